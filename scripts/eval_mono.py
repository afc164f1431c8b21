"""Measure speaker attribution on mono mixes of the stereo sample calls, old method vs new.

The new method is measured through the pipeline's own functions (pipeline/mono.py) with the
shipped settings ([vad], [speakers] of pipeline/data/callreview.toml). For every stereo call
in sample_audio/ (agent on the left channel):
  * mono mix = left + right, written as a mono WAV and read by pipeline.audio.load_call, as
    the pipeline reads a mono recording;
  * truth = pipeline.vad.speech_spans on each stereo channel on its own: every instant of speech
    is the agent's, the customer's, or both (overlap: not scored, reported);
  * the mix's own VAD spans are attributed by
      - old: the MFCC + pitch k-means heuristic pipeline/diarize.py shipped (first speaker =
        agent), kept below as the baseline;
      - new: mono.split_mono per call, then mono.attribute_chunk, in these modes:
          stereo print     each call in a chunk with the stereo_agent_embedding of the agent's
                           *other* calls' agent channel (leave-one-out)
          stored print     chunks of one call; the same print made by attribute_chunk, saved to
                           and loaded back from a DuckDB file (store.save/load_voice_prints)
          recurrence       one chunk with all of the agent's mono calls, no print at all
          recurrence, 2s   chunks of two of the agent's calls, in turn; the recurrence print a
                           chunk stores is what the next chunk starts from
          talk share       chunks of one call, no print anywhere: the voice that talks more
          + phrases        the same, then mono.settle_by_phrases on the script's text of each
                           side (what the flow does after transcription)
  * attribution = seconds of mono speech (covered by exactly one true speaker) given to the
    right speaker / all such seconds; "swapped" = more than half of the agent's true speech
    labelled customer.
Variant "customer first": the agent's first turn (the greeting, times from ground_truth.json)
is cut from the call and re-inserted, with 0.6 s of the channel's own line noise either side,
into the first pause after the customer's first turn; the stretch before the customer's first
turn is dropped from both channels, so the call opens with the customer. Nothing else moves.

    .venv/bin/python scripts/eval_mono.py                 # all 18 calls, both variants
    .venv/bin/python scripts/eval_mono.py --only A01 --no-old
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from scipy.cluster.vq import kmeans2, whiten

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline import mono, store  # noqa: E402
from pipeline.audio import load_call  # noqa: E402
from pipeline.config import Config, default_config  # noqa: E402
from pipeline.records import CallAudio, Segment, Transcript, Utterance  # noqa: E402
from pipeline.speakers import AgentChoice, CallVoices, SpeakerEncoder  # noqa: E402
from pipeline.tone import hz_to_st  # noqa: E402
from pipeline.vad import load_vad_model, speech_spans  # noqa: E402

SAMPLES = ROOT / "sample_audio"
FRAME_S = 0.01
PAD_S = 0.6
MODES = {
    "old": "old heuristic (first speaker = agent)",
    "print": "new: stereo print of the agent's other calls, in the chunk",
    "stored": "new: stored print (DuckDB), chunks of 1 call",
    "recurrence": "new: recurrence, one chunk of the agent's calls, no print",
    "recurrence2": "new: recurrence, chunks of 2 calls, print kept in the store",
    "talk": "new: no print, chunks of 1 call (talk share)",
    "phrases": "new: no print, chunks of 1 call, then phrases on the script text",
}
HEADLINE = ("print", "stored", "recurrence")  # the acceptance: >= 90 %, none swapped


# ----------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class StereoCall:
    call_id: str
    agent_id: str
    sr: int
    left: np.ndarray  # agent
    right: np.ndarray  # customer
    turns: tuple[tuple[float, float, str, str], ...]  # (start, end, speaker, text), ground truth


def load_samples(folder: Path = SAMPLES, only: Sequence[str] = ()) -> list[StereoCall]:
    gt = json.loads((folder / "ground_truth.json").read_text(encoding="utf-8"))["calls"]
    out = []
    for c in gt:
        if only and not any(c["call_id"].startswith(o) for o in only):
            continue
        data, sr = sf.read(str(folder / f"{c['call_id']}.ogg"), dtype="float32", always_2d=True)
        turns = tuple((t["start_s"], t["end_s"], t["speaker"], t["text"]) for t in c["turns"])
        out.append(
            StereoCall(c["call_id"], c["agent_id"], sr, data[:, 0].copy(), data[:, 1].copy(), turns)
        )
    return out


def customer_first(call: StereoCall) -> StereoCall:
    """The same call with the agent's first turn moved after the customer's first turn."""
    turns = sorted(call.turns)
    first_agent = next(t for t in turns if t[2] == "agent")
    first_cust = next(t for t in turns if t[2] == "customer")
    assert first_agent[0] < first_cust[0], "already customer-first"
    a0, a1 = first_agent[:2]
    c0, c1 = first_cust[:2]
    # First pause after the customer's first turn: nobody speaking (other than the moved turn).
    rest = [t for t in turns if t is not first_agent]
    t = c1
    moved = True
    while moved:
        moved = False
        for s, e, _, _ in rest:
            if s <= t < e:
                t, moved = e, True
    nxt = min((s for s, _, _, _ in rest if s >= t), default=len(call.left) / call.sr)
    insert_at = (t + nxt) / 2
    sr = call.sr
    ia0, ia1, ic0, ins = (int(round(v * sr)) for v in (a0, a1, c0, insert_at))
    pad = int(PAD_S * sr)

    def rebuild(x: np.ndarray, greeting: np.ndarray | None) -> np.ndarray:
        bed = x[: max(ia0 - int(0.05 * sr), sr // 10)]  # line noise before the greeting
        block = np.resize(bed, 2 * pad + (ia1 - ia0)).copy()
        if greeting is not None:
            block[pad : pad + len(greeting)] = greeting
        return np.concatenate([x[:ia0], x[ic0:ins], block, x[ins:]])

    left = rebuild(call.left, call.left[ia0:ia1])
    right = rebuild(call.right, None)
    shift = lambda v: v - (c0 - a0) if v >= c0 else v  # noqa: E731
    grow = (2 * pad + ia1 - ia0) / sr
    new_turns = []
    for s, e, who, text in rest:
        s2, e2 = shift(s), shift(e)
        if s >= insert_at:
            s2, e2 = s2 + grow, e2 + grow
        new_turns.append((s2, e2, who, text))
    g0 = shift(insert_at) + PAD_S
    new_turns.append((g0, g0 + (a1 - a0), "agent", first_agent[3]))
    return StereoCall(call.call_id, call.agent_id, sr, left, right, tuple(sorted(new_turns)))


def stereo_audio(call: StereoCall) -> CallAudio:
    """The call as the pipeline holds a stereo recording (16 kHz tracks, agent first)."""
    left, right = (to16k(x, call.sr) for x in (call.left, call.right))
    return CallAudio(16_000, len(left) / 16_000, call.sr, 2, "agent_left", "", (left, right))


def to16k(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == 16_000:
        return x.astype(np.float32)
    return librosa.resample(x, orig_sr=sr, target_sr=16_000, res_type="soxr_hq").astype(np.float32)


# ----------------------------------------------------------------------------- scoring


def _mask(spans: Sequence[tuple[float, float]], n: int) -> np.ndarray:
    m = np.zeros(n, bool)
    for a, b in spans:
        m[int(a / FRAME_S) : int(b / FRAME_S)] = True
    return m


@dataclass(frozen=True)
class Truth:
    agent: np.ndarray  # per 10 ms frame: the agent's channel has speech
    customer: np.ndarray
    mono_speech: np.ndarray  # the mono mix's VAD


@dataclass(frozen=True)
class Score:
    accuracy: float  # share of scored seconds given to the right speaker
    swapped: bool
    scored_s: float
    overlap_s: float  # mono speech where both truly speak: not scored


def score(truth: Truth, segments: Sequence[Segment]) -> Score:
    n = len(truth.agent)
    pred = np.full(n, -1)  # 1 agent, 0 customer
    for s in segments:
        pred[int(s.start_s / FRAME_S) : int(s.end_s / FRAME_S)] = int(s.speaker == "agent")
    single = truth.mono_speech & (truth.agent ^ truth.customer)
    overlap = truth.mono_speech & truth.agent & truth.customer
    right = (pred == truth.agent.astype(int)) & single
    total = int(single.sum())
    acc = right.sum() / total if total else float("nan")
    agent_true = single & truth.agent
    swapped = bool((pred[agent_true] == 0).sum() > agent_true.sum() / 2)
    return Score(float(acc), swapped, total * FRAME_S, float(overlap.sum()) * FRAME_S)


# ----------------------------------------------------------------------------- old method


def old_heuristic(audio: CallAudio, spans: Sequence[tuple[float, float]]) -> list[Segment]:
    """What pipeline/diarize.py did (with its [diarize] defaults, min_segment_s 0.128 and
    min_segments 4): each VAD segment's mean MFCC c1-c12 and median pitch, k-means into two
    voices, the voice that speaks first is the agent."""
    clips = [audio.clip("agent", a, b) for a, b in spans]
    usable = [i for i, c in enumerate(clips) if len(c) >= int(0.128 * audio.sr)]
    if len(usable) < 4:
        return [Segment(a, b, "agent") for a, b in spans]

    def features(x: np.ndarray) -> np.ndarray:
        mfcc = librosa.feature.mfcc(y=x, sr=audio.sr, n_mfcc=13).mean(axis=1)
        f0 = librosa.yin(x, fmin=65, fmax=500, sr=audio.sr, frame_length=1024)
        return np.append(mfcc[1:], hz_to_st(float(np.median(f0))))

    feats = whiten(np.stack([features(clips[i]) for i in usable]))
    _, labels = kmeans2(feats, 2, minit="++", seed=0)
    label_of = dict(zip(usable, labels, strict=True))
    agent = label_of[usable[0]]
    return [
        Segment(a, b, "agent" if label_of.get(i, agent) == agent else "customer")
        for i, (a, b) in enumerate(spans)
    ]


# ----------------------------------------------------------------------------- new method


@dataclass(frozen=True)
class MonoCase:
    """One mono mix, ready for stage B: what the flow's prepare step holds for a mono call."""

    call: StereoCall
    audio: CallAudio  # the mono mix, as load_call reads it
    spans: tuple[tuple[float, float], ...]  # the mix's VAD speech
    voices: CallVoices  # mono.split_mono
    truth: Truth
    split_s: float  # wall seconds of split_mono


class Tools:
    """The settings and models, loaded once (as a worker does)."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or default_config()
        self.vad_model = load_vad_model()
        self.encoder: SpeakerEncoder = mono.load_encoder()

    def spans(self, x: np.ndarray, sr: int = 16_000) -> list[tuple[float, float]]:
        return speech_spans(x, self.config.vad, self.vad_model, sr)


def mono_case(call: StereoCall, tools: Tools, folder: Path, script_truth: bool = False) -> MonoCase:
    """The mix as the pipeline reads and splits it. Truth: VAD on each stereo channel, or with
    `script_truth` the turn times of ground_truth.json (faster: tests)."""
    path = folder / f"{call.call_id}.{abs(hash(call.turns)) % 10**8}.wav"
    sf.write(str(path), call.left + call.right, call.sr, subtype="FLOAT")
    audio = load_call(path, "mono", tools.config.audio)
    spans = tuple(tools.spans(audio.samples("agent"), audio.sr))
    n = int(np.ceil(audio.duration_s / FRAME_S)) + 1
    if script_truth:
        side = [[(a, b) for a, b, who, _ in call.turns if who == w] for w in ("agent", "customer")]
    else:
        side = [tools.spans(to16k(x, call.sr)) for x in (call.left, call.right)]
    truth = Truth(_mask(side[0], n), _mask(side[1], n), _mask(spans, n))
    t0 = time.perf_counter()
    voices = mono.split_mono(audio, spans, tools.encoder, tools.config.speakers, call.call_id)
    return MonoCase(call, audio, spans, voices, truth, time.perf_counter() - t0)


def agent_embedding(call: StereoCall, tools: Tools) -> np.ndarray | None:
    """mono.stereo_agent_embedding of the stereo call's agent channel, over its VAD speech."""
    audio = stereo_audio(call)
    spans = tools.spans(audio.samples("agent"), audio.sr)
    return mono.stereo_agent_embedding(audio, spans, tools.encoder, tools.config.speakers)


Result = dict[str, tuple[list[Segment], AgentChoice]]


def _chunk(cases: Sequence[MonoCase], prints, stereo, tools: Tools):
    entries = [(c.call.call_id, c.call.agent_id, c.voices) for c in cases]
    return mono.attribute_chunk(entries, prints, stereo, tools.config.speakers)


def _with_phrases(case: MonoCase, segs: list[Segment], choice: AgentChoice, tools: Tools):
    """settle_by_phrases as the flow calls it after transcription, the script's turns standing
    in for the transcript (each turn goes to the side its segments give most of its time)."""
    utts = []
    for s, e, _, text in case.call.turns:
        cover = {"agent": 0.0, "customer": 0.0}
        for g in segs:
            cover[g.speaker] += max(0.0, min(e, g.end_s) - max(s, g.start_s))
        if sum(cover.values()) > 0:
            who = max(cover, key=lambda k: cover[k])
            utts.append(Utterance(case.call.call_id, len(utts), who, s, e, text))  # type: ignore[arg-type]
    phrases = mono.service_phrases(tools.config.lexicon, tools.config.speakers)
    _, settled = mono.settle_by_phrases(
        Transcript(utts, {}), case.voices, choice, phrases, tools.config.speakers
    )
    if settled.agent_voice != choice.agent_voice:
        swap = {"agent": "customer", "customer": "agent"}
        segs = [Segment(g.start_s, g.end_s, swap[g.speaker]) for g in segs]  # type: ignore[arg-type]
    return segs, settled


def run_new(
    cases: Sequence[MonoCase],
    embeddings: dict[str, np.ndarray | None],
    tools: Tools,
    folder: Path,
) -> dict[str, Result]:
    """Every mode of the new method; `embeddings`: call_id -> its stereo agent embedding."""
    out: dict[str, Result] = {m: {} for m in MODES if m != "old"}
    by_agent: dict[str, list[MonoCase]] = defaultdict(list)
    for c in cases:
        by_agent[c.call.agent_id].append(c)
    folder.mkdir(parents=True, exist_ok=True)
    con = store.connect(folder / "stored.duckdb")
    try:
        for agent_id, group in by_agent.items():
            segs, _, ch = _chunk(group, {}, {}, tools)
            out["recurrence"].update({k: (segs[k], ch[k]) for k in segs})
            rec = store.connect(folder / f"recurrence_{agent_id}.duckdb")  # a fresh store
            for i in range(0, len(group), 2):
                segs, new, ch = _chunk(group[i : i + 2], store.load_voice_prints(rec), {}, tools)
                store.save_voice_prints(rec, new)
                out["recurrence2"].update({k: (segs[k], ch[k]) for k in segs})
            rec.close()
            for c in group:
                cid = c.call.call_id
                others = {agent_id: [embeddings[o.call.call_id] for o in group if o is not c]}
                segs, new, ch = _chunk([c], {}, others, tools)
                out["print"][cid] = (segs[cid], ch[cid])
                _, built, _ = _chunk([], {}, others, tools)
                store.save_voice_prints(con, built)
                segs, _, ch = _chunk([c], store.load_voice_prints(con, [agent_id]), {}, tools)
                out["stored"][cid] = (segs[cid], ch[cid])
                segs, _, ch = _chunk([c], {}, {}, tools)
                out["talk"][cid] = (segs[cid], ch[cid])
                out["phrases"][cid] = _with_phrases(c, segs[cid], ch[cid], tools)
    finally:
        con.close()
    return out


# ----------------------------------------------------------------------------- report


def evaluate(
    calls: Sequence[StereoCall], with_old: bool = True, verbose: bool = True
) -> dict[str, dict]:
    """variant -> {"scores": {mode: {call_id: Score}}, "choices": ..., "minutes", "split_s",
    "old_s"}; the stereo prints always come from the calls as recorded."""
    tools = Tools()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="eval_mono_") as tmp:
        t0 = time.perf_counter()
        embeddings = {c.call_id: agent_embedding(c, tools) for c in calls}
        embed_s = time.perf_counter() - t0
        for variant in ("as recorded", "customer first"):
            vcalls = calls if variant == "as recorded" else [customer_first(c) for c in calls]
            cases = [mono_case(c, tools, Path(tmp)) for c in vcalls]
            new = run_new(cases, embeddings, tools, Path(tmp) / variant.replace(" ", "_"))
            t1 = time.perf_counter()
            old = (
                {c.call.call_id: old_heuristic(c.audio, c.spans) for c in cases} if with_old else {}
            )
            old_s = time.perf_counter() - t1
            scores: dict[str, dict[str, Score]] = {m: {} for m in MODES}
            choices: dict[str, dict[str, AgentChoice]] = {m: {} for m in new}
            for c in cases:
                cid = c.call.call_id
                if with_old:
                    scores["old"][cid] = score(c.truth, old[cid])
                for m, res in new.items():
                    scores[m][cid] = score(c.truth, res[cid][0])
                    choices[m][cid] = res[cid][1]
            results[variant] = {
                "scores": {m: s for m, s in scores.items() if s},
                "choices": choices,
                "voices": {c.call.call_id: c.voices for c in cases},
                "minutes": sum(c.audio.duration_s for c in cases) / 60,
                "split_s": sum(c.split_s for c in cases),
                "old_s": old_s,
                "embed_s": embed_s,
            }
            if verbose:
                print_calls(variant, results[variant])
    return results


def overall(scores: dict[str, Score]) -> tuple[float, float, int]:
    """(share right over all scored seconds, lowest call's share, calls swapped)."""
    total = sum(s.scored_s for s in scores.values())
    acc = sum(s.accuracy * s.scored_s for s in scores.values()) / total
    return acc, min(s.accuracy for s in scores.values()), sum(s.swapped for s in scores.values())


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


SHORT = {"voice_print": "P", "recurrence": "R", "phrases": "Ph", "talk_share": "T"}


def print_calls(variant: str, res: dict) -> None:
    modes = list(res["scores"])
    print(f"\n### Mono mixes, {variant}: % of speech right (* swapped), rule that decided\n")
    print("| call | scored s | voices | d' | " + " | ".join(modes) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(modes))
    for cid, v in res["voices"].items():
        first = res["scores"][modes[0]][cid]
        cells = [f"{cid} | {first.scored_s:.1f} | {v.n_voices} | {v.separation:.1f}"]
        for m in modes:
            s = res["scores"][m][cid]
            rule = res["choices"][m][cid].decided_by if m in res["choices"] else ""
            cells.append(
                f"{_pct(s.accuracy)}{'*' if s.swapped else ''} {SHORT.get(rule, rule[:2])}"
            )
        print("| " + " | ".join(cells) + " |")
    print("\nrules: P voice print, R recurrence, Ph phrases, T talk share, si single voice")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", nargs="*", default=(), help="call_id prefixes (e.g. A01 A02-E)")
    ap.add_argument("--no-old", action="store_true", help="skip the old heuristic")
    args = ap.parse_args(argv)
    calls = load_samples(only=args.only)
    t0 = time.perf_counter()
    res = evaluate(calls, with_old=not args.no_old)
    print(
        "\n### Share of single-speaker mono speech attributed right (lowest call); calls swapped\n"
    )
    print("| method | " + " | ".join(res) + " |")
    print("|---|" + "---:|" * len(res))
    passed = True
    for m in res["as recorded"]["scores"]:
        cells = []
        for v in res.values():
            acc, low, sw = overall(v["scores"][m])
            cells.append(f"{_pct(acc)} % ({_pct(low)} %), {sw} swapped")
            passed &= m not in HEADLINE or (acc >= 0.9 and sw == 0)
        print(f"| {MODES[m]} | " + " | ".join(cells) + " |")
    v = res["as recorded"]
    minutes = v["minutes"]
    split = sum(r["split_s"] for r in res.values()) / (len(res) * minutes)
    old = sum(r["old_s"] for r in res.values()) / (len(res) * minutes)
    print(
        f"\n{len(calls)} calls, {minutes:.1f} call-minutes per variant. Per call-minute: "
        f"split_mono {split:.2f} s, old heuristic {old:.2f} s, stereo_agent_embedding "
        f"{v['embed_s'] / minutes:.2f} s (wall; VAD not included). "
        f"Total {time.perf_counter() - t0:.0f} s."
    )
    verdict = "met" if passed else "NOT met"
    print(f"Acceptance (>= 90 % right, no call swapped, both variants, {HEADLINE}): {verdict}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
