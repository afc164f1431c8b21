"""Can a mono call's split tell one voice from two? The split's own figures, measured.

A mono recording with a single voice (a customer channel lost, a voicemail, a test line) should
stay one voice. `pipeline.speakers.split_voices` always splits in two unless
`[speakers] one_voice_cosine` (the cosine between the two halves' mean GE2E embeddings) says the
halves are one voice; it ships at 1.0 (never), because no threshold separated the cases. This
script measures that, on voices the project does not tune on, with the shipped settings:

  one voice   8 random clips of one speaker joined with 0.3-1.0 s pauses: the AISHELL read
              speaker S0150, and each CASIA speaker across acted emotions (the hard case: one
              voice, angry to sad); the sample calls' agent channel alone and customer channel
              alone (synthetic voices)
  two voices  4 + 4 clips of two different speakers, alternating (S0150 with each CASIA
              speaker, S0150 with Magic Data customer-service speakers, the two CASIA speakers);
              the sample calls' mono mixes (agent + customer channel)

For each recording: the cosine between the two halves' mean embeddings (after the discriminant
split, as the pipeline splits) and the split's d'. It prints the range of each figure per set
and the best single threshold on each figure with its errors.

    .venv/bin/python scripts/eval_one_voice.py              # 6 draws per set (about 1 min)
    .venv/bin/python scripts/eval_one_voice.py --draws 20
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_mono import load_samples, to16k  # noqa: E402

from pipeline.config import default_config  # noqa: E402
from pipeline.speakers import embed_call, load_encoder  # noqa: E402
from pipeline.speakers.options import unit  # noqa: E402
from pipeline.speakers.split import _discriminant_space, _kmeans2, _two_way_split  # noqa: E402
from pipeline.vad import load_vad_model, speech_spans  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
SR = 16_000


def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return librosa.resample(x, orig_sr=sr, target_sr=SR) if sr != SR else x


def _join(paths: list[Path], rng: np.random.Generator) -> np.ndarray:
    parts = []
    for p in paths:
        parts.append(_read(p))
        parts.append(rng.normal(0, 1e-3, int(SR * rng.uniform(0.3, 1.0))).astype(np.float32))
    return np.concatenate(parts)


def split_figures(x: np.ndarray, cfg, encoder, vad) -> tuple[float, float] | None:
    """(cosine of the two halves' mean embeddings, d' of the split); None: too little speech."""
    w = embed_call(x, SR, speech_spans(x, cfg.vad, vad), encoder, cfg.speakers)
    if len(w.embeddings) < 4:
        return None
    labels = _kmeans2(_discriminant_space(w, cfg.speakers), cfg.speakers.n_init)
    e = w.embeddings.astype(np.float64)
    cos = float(unit(e[labels == 0].mean(0)) @ unit(e[labels == 1].mean(0)))
    split = _two_way_split(w, cfg.speakers)
    return cos, split[1] if split else 0.0


def eval_sets(draws: int, seed: int) -> dict[tuple[str, str], list[tuple[float, float]]]:
    rng = np.random.default_rng(seed)
    asr = [r.split("\t") for r in (EVAL / "asr/manifest.tsv").read_text().splitlines()[1:]]
    emo = [r.split("\t") for r in (EVAL / "emotion/manifest.tsv").read_text().splitlines()[1:]]
    pools = {
        "S0150": [EVAL / "asr" / r[0] for r in asr if r[2] == "S0150"],
        "casia-liuchanhg": [EVAL / "emotion" / r[0] for r in emo if r[1] == "liuchanhg"],
        "casia-wangzhe": [EVAL / "emotion" / r[0] for r in emo if r[1] == "wangzhe"],
        "magicdata": [EVAL / "asr" / r[0] for r in asr if r[3].startswith("customer")],
    }
    cfg, encoder, vad = default_config(), load_encoder(), load_vad_model()
    pick = lambda name, n: [pools[name][i] for i in rng.choice(len(pools[name]), n, False)]  # noqa: E731
    out: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for _ in range(draws):
        for name in ("S0150", "casia-liuchanhg", "casia-wangzhe"):
            out["one", name].append(split_figures(_join(pick(name, 8), rng), cfg, encoder, vad))
        pairs = [
            ("S0150", "casia-liuchanhg"),
            ("S0150", "casia-wangzhe"),
            ("casia-liuchanhg", "casia-wangzhe"),
            ("S0150", "magicdata"),
        ]
        for a, b in pairs:
            mix = [p for ab in zip(pick(a, 4), pick(b, 4), strict=True) for p in ab]
            out["two", f"{a} + {b}"].append(split_figures(_join(mix, rng), cfg, encoder, vad))
    for call in load_samples():
        left, right = to16k(call.left, call.sr), to16k(call.right, call.sr)
        out["one", "sample calls, agent channel"].append(split_figures(left, cfg, encoder, vad))
        out["one", "sample calls, customer channel"].append(split_figures(right, cfg, encoder, vad))
        out["two", "sample calls, mono mix"].append(split_figures(left + right, cfg, encoder, vad))
    return {k: [f for f in v if f is not None] for k, v in out.items()}


def best_threshold(one: np.ndarray, two: np.ndarray, one_above: bool) -> tuple[float, int, int]:
    """The threshold with fewest errors: (threshold, one-voice split, two voices merged)."""
    best = (np.nan, len(one), len(two))
    for t in np.unique(np.concatenate([one, two])):
        if one_above:
            missed, merged = int((one <= t).sum()), int((two > t).sum())
        else:
            missed, merged = int((one >= t).sum()), int((two < t).sum())
        if missed + merged < best[1] + best[2]:
            best = (float(t), missed, merged)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=6, help="recordings per built set")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not EVAL.is_dir():
        print(f"{EVAL} not found: nothing to measure")
        return 0
    sets = eval_sets(args.draws, args.seed)
    print("| voices | recordings | n | halves' cosine (min - max) | d' (min - max) |")
    print("|---|---|---:|---|---|")
    for (kind, name), figs in sets.items():
        c, d = np.array(figs).T
        print(
            f"| {kind} | {name} | {len(figs)} | {c.min():.3f} - {c.max():.3f} | "
            f"{d.min():.1f} - {d.max():.1f} |"
        )
    for scope, keep in (("real voices", lambda n: "sample" not in n), ("all", lambda n: True)):
        one = np.array([f for (k, n), v in sets.items() if k == "one" and keep(n) for f in v])
        two = np.array([f for (k, n), v in sets.items() if k == "two" and keep(n) for f in v])
        for col, label, above in ((0, "halves' cosine", True), (1, "d'", False)):
            t, missed, merged = best_threshold(one[:, col], two[:, col], above)
            print(
                f"{scope}: best threshold on {label} {t:.3f}: {missed} of {len(one)} one-voice "
                f"recordings still split, {merged} of {len(two)} two-voice recordings merged"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
