"""Precision and recall of the service-behaviour patterns on the labelled snippets, per behaviour
and half (tuned, held_out), and recall with 5% and 10% of characters substituted at random.

    PYTHONPATH=. .venv/bin/python scripts/behaviour_eval.py [--patterns FILE] [--no-fuzzy]

The held_out half was written and committed before any pattern existed; it is never tuned on
(tests/data/behaviours/LABELLING.md).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pipeline.behaviours.evaluate import noisy_recall, read_snippets, score
from pipeline.behaviours.spec import load_behaviours

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "behaviours"
NOISE = (0.05, 0.10)
SEEDS = range(10)


def _pct(x: float | None) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patterns", type=Path, default=ROOT / "pipeline/data/behaviours.toml")
    ap.add_argument("--no-fuzzy", action="store_true", help="exact phrase matching only")
    args = ap.parse_args()
    spec = load_behaviours(args.patterns)
    if args.no_fuzzy:
        spec = dataclasses.replace(spec, fuzzy_min_chars=10_000)
    print(f"patterns: {spec.source}; noise recall pooled over seeds {SEEDS.start}-{SEEDS.stop - 1}")
    for half in ("tuned", "held_out"):
        snippets = read_snippets(DATA / f"{half}.tsv")
        noise = {rate: noisy_recall(spec, snippets, rate, SEEDS) for rate in NOISE}
        print(f"\n{half} ({len(snippets)} snippets)")
        print(f"{'behaviour':<16} {'P %':>5} {'R %':>5}  tp fp fn  R@5% R@10%")
        for sc in score(spec, snippets):
            print(
                f"{sc.behaviour:<16} {_pct(sc.precision)} {_pct(sc.recall)} "
                f"{sc.tp:3d}{sc.fp:3d}{sc.fn:3d} {_pct(noise[0.05][sc.behaviour])}"
                f" {_pct(noise[0.10][sc.behaviour])}"
            )


if __name__ == "__main__":
    main()
