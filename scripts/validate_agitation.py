"""Validate the agitation score on labelled real speech (CASIA, ../shared/eval/emotion).

Same speaker, same sentence, different emotion: the agitation of the angry reading should be
above the neutral one. Each speaker's neutral clips play the role of the agent's early-career
baseline, exactly as pipeline.derive uses it; features come from pipeline.tone.acoustics.
Speaking rate uses the clip duration (the same sentence is read in every emotion, so
characters / duration differ only by tempo; the character count cancels in the z-score only
up to a per-sentence constant, so rate is scaled by the speaker's neutral reading of the same
sentence).

    .venv/bin/python scripts/validate_agitation.py [--eval ../shared/eval/emotion]

Prints per speaker: pairwise accuracy (angry > neutral on the same sentence), ROC AUC of angry
vs neutral, and the same for every other emotion vs neutral.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from pipeline import derive
from pipeline.audio import SAMPLE_RATE
from pipeline.tone import acoustics

DEFAULT_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "emotion"


def features(folder: Path, emotions: tuple[str, ...] | None = None,
             max_sentences: int | None = None) -> pd.DataFrame:
    with open(folder / "manifest.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if emotions:
        rows = [r for r in rows if r["emotion"] in emotions]
    if max_sentences:
        keep = sorted({r["sentence_id"] for r in rows})[:max_sentences]
        rows = [r for r in rows if r["sentence_id"] in keep]
    out = []
    for i, r in enumerate(rows):
        x, _ = librosa.load(folder / r["path"], sr=SAMPLE_RATE)
        x, _ = librosa.effects.trim(x, top_db=35)
        ac = acoustics(x)
        out.append({"agent_id": r["speaker"], "emotion": r["emotion"], "sentence": r["sentence_id"],
                    "call_id": f"{r['speaker']}-{r['emotion']}-{r['sentence_id']}", "utterance_id": 0,
                    "start_s": 0.0, "end_s": len(x) / SAMPLE_RATE, "pitch_median_hz": ac.pitch_median_hz,
                    "pitch_range_st": ac.pitch_range_st, "loudness_dbfs": ac.loudness_dbfs,
                    "duration_s": len(x) / SAMPLE_RATE})
        if i % 100 == 0:
            print(f"  {i}/{len(rows)} clips", file=sys.stderr)
    df = pd.DataFrame(out)
    # tempo relative to the same speaker's neutral reading of the same sentence, as 字/分钟 of a
    # nominal 200 字/分钟 neutral reading
    neutral = df[df.emotion == "neutral"].set_index(["agent_id", "sentence"])["duration_s"]
    ref = df.set_index(["agent_id", "sentence"]).index.map(neutral.get)
    df["speech_rate_cpm"] = 200.0 * np.asarray(ref, dtype=float) / df["duration_s"]
    df["cohort"] = np.where(df.emotion == "neutral", "early", "current")
    return df


def score(df: pd.DataFrame) -> pd.DataFrame:
    """Agitation per clip against the speaker's neutral clips as baseline (pipeline.derive)."""
    base = derive.agent_baselines(df)
    return df.merge(derive.utterance_agitation(df, base), on=["call_id", "utterance_id"])


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability a random positive scores above a random negative (ties count half)."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", type=Path, default=DEFAULT_EVAL)
    args = ap.parse_args()
    if not (args.eval / "manifest.tsv").is_file():
        print(f"no evaluation data at {args.eval}: skipped")
        return 0
    scored = score(features(args.eval))
    print("| speaker | emotion | pairwise acc. (> neutral, same sentence) | AUC vs neutral | mean agitation |")
    print("|---|---|---|---|---|")
    for speaker, g in scored.groupby("agent_id"):
        neutral = g[g.emotion == "neutral"].set_index("sentence")["agitation"]
        for emotion in ("angry", "surprise", "happy", "fear", "sad", "neutral"):
            e = g[g.emotion == emotion].set_index("sentence")["agitation"]
            common = e.index.intersection(neutral.index)
            acc = float((e[common] > neutral[common]).mean()) if emotion != "neutral" else float("nan")
            print(f"| {speaker} | {emotion} | {acc:.2f} | {auc(e.dropna().to_numpy(), neutral.dropna().to_numpy()):.2f} "
                  f"| {e.mean():+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
