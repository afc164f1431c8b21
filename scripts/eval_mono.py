"""Measure speaker attribution on mono mixes of the stereo sample calls, old method vs new.

For every stereo call in sample_audio/ (agent on the left channel):
  * mono mix = left + right (summed, float WAV at the source rate, in a temp folder);
  * truth = silero VAD run on each stereo channel on its own: every instant of speech is the
    agent's, the customer's, or both (overlap: excluded from the score, reported);
  * the mono mix's own VAD spans are attributed by
      - old: pipeline.diarize.attribute_mono (MFCC + pitch k-means, first speaker = agent);
      - new: pipeline.speakers (GE2E windows split into two voices per call; the agent's voice
        chosen per agent by recurrence across the agent's mono calls, or by a voice print from
        the agent's *other* calls' stereo agent channel, leave-one-out).
  * attribution = seconds of mono speech (covered by exactly one true speaker) given to the
    right speaker / all such seconds; "split alone" = the same with the better of the two
    voice-to-speaker mappings (the clustering's own quality); "swapped" = more than half of
    the agent's true speech labelled customer.
Variant "customer first": the agent's first turn (the greeting, times from ground_truth.json)
is cut from the call and re-inserted, with 0.6 s of the channel's own line noise either side,
into the first pause after the customer's first turn; the stretch before the customer's first
turn is dropped from both channels, so the call opens with the customer. Nothing else moves.

    .venv/bin/python scripts/eval_mono.py                 # all 18 calls, both variants
    .venv/bin/python scripts/eval_mono.py --only A01 --no-old
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import librosa
import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline import speakers as spk  # noqa: E402
from pipeline.records import Segment  # noqa: E402

SAMPLES = ROOT / "sample_audio"
FRAME_S = 0.01
PAD_S = 0.6
SR = 16_000


# ----------------------------------------------------------------------------- settings

# The shipped defaults (pipeline/data/callreview.toml), used only if the config cannot be read.
_VAD_FALLBACK = SimpleNamespace(
    threshold=0.5, min_speech_s=0.25, min_silence_s=0.5, speech_pad_s=0.1, max_utterance_s=28.0
)
_DIARIZE_FALLBACK = SimpleNamespace(min_segment_s=0.128, min_segments=4)


@lru_cache(maxsize=1)
def shipped_options() -> tuple[object, object]:
    """(VAD options, diarize options) from pipeline.config's defaults, read once."""
    try:
        from pipeline.config import default_config

        cfg = default_config()
        return cfg.vad, getattr(cfg, "diarize", _DIARIZE_FALLBACK)
    except Exception as e:  # noqa: BLE001  (the config is being refactored: report, fall back)
        print(
            f"note: default_config() failed ({type(e).__name__}: {e}); using the shipped "
            "VAD/diarize defaults",
            file=sys.stderr,
        )
        return _VAD_FALLBACK, _DIARIZE_FALLBACK


# ----------------------------------------------------------------------------- VAD


def make_vad() -> Callable[[np.ndarray, int], list[tuple[float, float]]]:
    """pipeline.vad.speech_spans with the shipped VAD options, whatever its current signature;
    silero directly with the same options if that module does not import (mid-refactor)."""
    opts = shipped_options()[0]
    try:
        from pipeline import vad as pvad

        params = inspect.signature(pvad.speech_spans).parameters
        if "options" in params and "model" in params:
            model = pvad.load_vad_model() if hasattr(pvad, "load_vad_model") else None
            if model is not None:
                return lambda x, sr: pvad.speech_spans(x, opts, model, sr)
        elif len(params) <= 2:
            return lambda x, sr: pvad.speech_spans(x, sr)
    except Exception as e:  # noqa: BLE001  (report and fall back)
        print(
            f"note: pipeline.vad unusable ({type(e).__name__}: {e}); calling silero directly",
            file=sys.stderr,
        )
    threads = torch.get_num_threads()
    from silero_vad import get_speech_timestamps, load_silero_vad

    torch.set_num_threads(threads)
    model = load_silero_vad()

    def spans(x: np.ndarray, sr: int) -> list[tuple[float, float]]:
        x8 = (
            librosa.resample(x, orig_sr=sr, target_sr=8000, res_type="soxr_qq") if sr != 8000 else x
        )
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            ts = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(x8, dtype=np.float32)),
                model,
                threshold=opts.threshold,
                sampling_rate=8000,
                min_speech_duration_ms=int(opts.min_speech_s * 1000),
                min_silence_duration_ms=int(opts.min_silence_s * 1000),
                speech_pad_ms=int(opts.speech_pad_s * 1000),
                max_speech_duration_s=opts.max_utterance_s,
            )
        finally:
            torch.set_num_threads(before)
        return [(t["start"] / 8000, t["end"] / 8000) for t in ts]

    return spans


# ----------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class StereoCall:
    call_id: str
    agent_id: str
    sr: int
    left: np.ndarray  # agent
    right: np.ndarray  # customer
    turns: tuple[tuple[float, float, str], ...]  # (start, end, speaker) from ground_truth.json


def load_samples(folder: Path = SAMPLES, only: Sequence[str] = ()) -> list[StereoCall]:
    gt = json.loads((folder / "ground_truth.json").read_text(encoding="utf-8"))["calls"]
    out = []
    for c in gt:
        if only and not any(c["call_id"].startswith(o) for o in only):
            continue
        data, sr = sf.read(str(folder / f"{c['call_id']}.ogg"), dtype="float32", always_2d=True)
        turns = tuple((t["start_s"], t["end_s"], t["speaker"]) for t in c["turns"])
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
        for s, e, _ in rest:
            if s <= t < e:
                t, moved = e, True
    nxt = min((s for s, _, _ in rest if s >= t), default=len(call.left) / call.sr)
    insert_at = (t + nxt) / 2
    sr = call.sr
    ia0, ia1, ic0, ins = (int(round(v * sr)) for v in (a0, a1, c0, insert_at))
    pad = int(PAD_S * sr)

    def noise(x: np.ndarray, n: int) -> np.ndarray:
        bed = x[: max(ia0 - int(0.05 * sr), sr // 10)]  # line noise before the greeting
        return np.resize(bed, n)

    def rebuild(x: np.ndarray, greeting: np.ndarray | None) -> np.ndarray:
        filler = noise(x, 2 * pad + (ia1 - ia0))
        block = filler.copy()
        if greeting is not None:
            block[pad : pad + len(greeting)] = greeting
        return np.concatenate([x[:ia0], x[ic0:ins], block, x[ins:]])

    left = rebuild(call.left, call.left[ia0:ia1])
    right = rebuild(call.right, None)
    shift = lambda v: v - (c0 - a0) if v >= c0 else v  # noqa: E731
    grow = (2 * pad + ia1 - ia0) / sr
    new_turns = []
    for s, e, who in rest:
        s2, e2 = shift(s), shift(e)
        if s >= insert_at:
            s2, e2 = s2 + grow, e2 + grow
        new_turns.append((s2, e2, who))
    g0 = shift(insert_at) + PAD_S
    new_turns.append((g0, g0 + (a1 - a0), "agent"))
    return StereoCall(call.call_id, call.agent_id, sr, left, right, tuple(sorted(new_turns)))


def to16k(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == SR:
        return x.astype(np.float32)
    return librosa.resample(x, orig_sr=sr, target_sr=SR, res_type="soxr_hq").astype(np.float32)


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
    mono_spans: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Score:
    accuracy: float  # share of scored seconds given to the right speaker
    split_alone: float  # the same with the better voice mapping (clustering quality)
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
    flipped = (pred == (~truth.agent).astype(int)) & single
    total = int(single.sum())
    acc = right.sum() / total if total else float("nan")
    alone = max(right.sum(), flipped.sum()) / total if total else float("nan")
    agent_true = single & truth.agent
    swapped = bool((pred[agent_true] == 0).sum() > agent_true.sum() / 2)
    return Score(float(acc), float(alone), swapped, total * FRAME_S, float(overlap.sum()) * FRAME_S)


# ----------------------------------------------------------------------------- methods


def run_old(mono_path: Path, spans: list[tuple[float, float]]) -> list[Segment]:
    """pipeline.diarize.attribute_mono as the pipeline calls it, on the mono file."""
    from pipeline.audio import load_call
    from pipeline.diarize import attribute_mono

    audio = load_call(mono_path)
    params = inspect.signature(attribute_mono).parameters
    if len(params) >= 3:
        return attribute_mono(audio, spans, shipped_options()[1])
    return attribute_mono(audio, spans)


@dataclass
class Prepared:
    call: StereoCall
    truth: Truth
    mono_path: Path
    voices: spk.CallVoices
    agent_print: np.ndarray | None  # this call's stereo agent channel (for other calls' prints)
    minutes: float
    embed_s: float
    embed_cpu_s: float


def prepare(
    call: StereoCall,
    vad,
    encoder,
    options: spk.SpeakerOptions,
    folder: Path,
    tag: str,
    agent_print: np.ndarray | None = None,
) -> Prepared:
    left, right = to16k(call.left, call.sr), to16k(call.right, call.sr)
    mono = call.left + call.right
    mono_path = folder / f"{call.call_id}.{tag}.wav"
    sf.write(str(mono_path), mono, call.sr, subtype="FLOAT")
    mono16 = to16k(mono, call.sr)
    n = int(np.ceil(len(mono16) / SR / FRAME_S)) + 1
    ta, tc = vad(left, SR), vad(right, SR)
    ms = vad(mono16, SR)
    truth = Truth(_mask(ta, n), _mask(tc, n), _mask(ms, n), tuple(ms))
    t0, c0 = time.perf_counter(), time.process_time()
    windows = spk.embed_call(mono16, SR, ms, encoder, options, call_id=call.call_id)
    voices = spk.split_voices(windows, options)
    embed_s, embed_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    if agent_print is None:  # the variant's agent channel holds the same speech: reuse
        agent_print = spk.embed_speech(left, SR, ta, encoder, options)
    return Prepared(
        call, truth, mono_path, voices, agent_print, len(mono16) / SR / 60, embed_s, embed_cpu_s
    )


def new_segments(
    prepared: Sequence[Prepared], options: spk.SpeakerOptions, mode: str
) -> dict[str, tuple[list[Segment], spk.AgentChoice]]:
    """mode 'recurrence': no stereo calls; 'print': print from the agent's other stereo calls."""
    out: dict[str, tuple[list[Segment], spk.AgentChoice]] = {}
    by_agent: dict[str, list[Prepared]] = defaultdict(list)
    for p in prepared:
        by_agent[p.call.agent_id].append(p)
    for agent_id, group in by_agent.items():
        if mode == "recurrence":
            res = spk.choose_agent_voices(agent_id, [p.voices for p in group], options)
            for p in group:
                ch = res.choices[p.call.call_id]
                out[p.call.call_id] = (spk.attribute(p.voices, ch), ch)
        else:
            for p in group:
                vp = spk.voice_print_from_stereo(
                    agent_id, [o.agent_print for o in group if o is not p]
                )
                res = spk.choose_agent_voices(agent_id, [p.voices], options, voice_print=vp)
                ch = res.choices[p.call.call_id]
                out[p.call.call_id] = (spk.attribute(p.voices, ch), ch)
    return out


# ----------------------------------------------------------------------------- report


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def evaluate(
    calls: Sequence[StereoCall],
    options: spk.SpeakerOptions,
    with_old: bool = True,
    verbose: bool = True,
) -> dict[str, dict]:
    vad = make_vad()
    encoder = spk.load_encoder()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="eval_mono_") as tmp:
        for variant in ("original", "customer first"):
            t0 = time.perf_counter()
            variant_calls = calls if variant == "original" else [customer_first(c) for c in calls]
            prints = {
                cid: r["agent_print"]
                for cid, r in results.get("original", {}).get("rows", {}).items()
            }
            prepared = [
                prepare(c, vad, encoder, options, Path(tmp), variant[:4], prints.get(c.call_id))
                for c in variant_calls
            ]
            prep_s = time.perf_counter() - t0
            rows = {}
            t1, c1 = time.perf_counter(), time.process_time()
            old = (
                {p.call.call_id: run_old(p.mono_path, list(p.truth.mono_spans)) for p in prepared}
                if with_old
                else {}
            )
            old_s = time.perf_counter() - t1
            old_cpu_s = time.process_time() - c1
            new = {m: new_segments(prepared, options, m) for m in ("recurrence", "print")}
            for p in prepared:
                cid = p.call.call_id
                row = {
                    "minutes": p.minutes,
                    "embed_s": p.embed_s,
                    "embed_cpu_s": p.embed_cpu_s,
                    "agent_print": p.agent_print,
                    "n_voices": p.voices.n_voices,
                    "separation": p.voices.separation,
                }
                if with_old:
                    row["old"] = score(p.truth, old[cid])
                for m in new:
                    segs, ch = new[m][cid]
                    row[m] = score(p.truth, segs)
                    row[m + "_choice"] = ch
                rows[cid] = row
            results[variant] = {
                "rows": rows,
                "prep_s": prep_s,
                "old_s": old_s,
                "old_cpu_s": old_cpu_s,
            }
            if verbose:
                print_table(variant, rows, with_old)
    return results


def _overall(rows: dict, key: str) -> tuple[float, float, int]:
    scored = sum(r[key].scored_s for r in rows.values())
    acc = sum(r[key].accuracy * r[key].scored_s for r in rows.values()) / scored
    alone = sum(r[key].split_alone * r[key].scored_s for r in rows.values()) / scored
    return acc, alone, sum(r[key].swapped for r in rows.values())


def print_table(variant: str, rows: dict, with_old: bool) -> None:
    keys = (["old"] if with_old else []) + ["recurrence", "print"]
    names = {"old": "old heuristic", "recurrence": "new, recurrence", "print": "new, stereo print"}
    print(f"\n### Mono mixes, {variant} ({len(rows)} calls)\n")
    head = "| call | scored s | overlap s |"
    line = "|---|---:|---:|"
    for k in keys:
        head += f" {names[k]} % | split alone % | swapped |"
        line += "---:|---:|:---:|"
    head += " voices | d' | print margin |"
    line += "---:|---:|---:|"
    print(head)
    print(line)
    for cid, r in rows.items():
        first = r[keys[0]]
        cells = f"| {cid} | {first.scored_s:.1f} | {first.overlap_s:.1f} |"
        for k in keys:
            s = r[k]
            cells += f" {_pct(s.accuracy)} | {_pct(s.split_alone)} | {'yes' if s.swapped else ''} |"
        cells += f" {r['n_voices']} | {r['separation']:.1f} | {r['print_choice'].margin:.3f} |"
        print(cells)
    cells = "| **all** | | |"
    for k in keys:
        acc, alone, sw = _overall(rows, k)
        cells += f" **{_pct(acc)}** | {_pct(alone)} | **{sw}** |"
    print(cells + " | | |")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", nargs="*", default=(), help="call_id prefixes (e.g. A01 A02-E)")
    ap.add_argument("--no-old", action="store_true", help="skip the old heuristic")
    args = ap.parse_args(argv)
    calls = load_samples(only=args.only)
    options = spk.SpeakerOptions()
    t0 = time.perf_counter()
    res = evaluate(calls, options, with_old=not args.no_old)
    minutes = sum(r["minutes"] for r in res["original"]["rows"].values())
    rows = [r for v in res.values() for r in v["rows"].values()]
    embed = sum(r["embed_s"] for r in rows) / (2 * minutes)
    embed_cpu = sum(r["embed_cpu_s"] for r in rows) / (2 * minutes)
    old = sum(v["old_s"] for v in res.values()) / (2 * minutes)
    old_cpu = sum(v["old_cpu_s"] for v in res.values()) / (2 * minutes)
    print("\n### Summary: share of single-speaker mono speech attributed right; calls swapped\n")
    print("| variant | old heuristic | new, recurrence | new, stereo print |")
    print("|---|---:|---:|---:|")
    for variant, v in res.items():
        cells = []
        for k in ("old", "recurrence", "print"):
            if k in next(iter(v["rows"].values())):
                acc, _, sw = _overall(v["rows"], k)
                low = min(r[k].accuracy for r in v["rows"].values())
                cells.append(f"{_pct(acc)} % (lowest call {_pct(low)} %), {sw} swapped")
            else:
                cells.append("-")
        print(f"| {variant} | " + " | ".join(cells) + " |")
    print(
        f"\n{len(calls)} calls, {minutes:.1f} call-minutes per variant. Per call-minute: new "
        f"stage A (embed + split) {embed:.2f} s wall / {embed_cpu:.2f} s CPU; old heuristic "
        f"{old:.2f} s wall / {old_cpu:.2f} s CPU (VAD not included). Total {time.perf_counter() - t0:.0f} s."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
