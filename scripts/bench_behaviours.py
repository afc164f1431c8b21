"""How long the service-behaviour tables take in the derive stage, per utterance.

    PYTHONPATH=. .venv/bin/python scripts/bench_behaviours.py [--calls 400] [--turns 20]

Synthetic calls built from the labelled snippets (tests/data/behaviours/): each turn is one
snippet's customer and agent lines, so behaviours are far denser than in real calls (a worst
case for the matching). 10 agents; reciting compares each agent's calls.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import pandas as pd

from pipeline.behaviours.evaluate import read_snippets
from pipeline.behaviours.tables import behaviour_tables
from pipeline.config import default_config

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "behaviours"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--turns", type=int, default=20)
    args = ap.parse_args()
    snippets = read_snippets(DATA / "tuned.tsv") + read_snippets(DATA / "held_out.tsv")
    rng = random.Random(0)
    rows = []
    for c in range(args.calls):
        for t in range(args.turns):
            s = rng.choice(snippets)
            for k, (speaker, text) in enumerate((("customer", s.customer), ("agent", s.agent))):
                start = 10.0 * t + 5 * k
                rows.append((f"c{c}", f"A{c % 10}", 2 * t + k, speaker, start, start + 4, text))
    utts = pd.DataFrame(
        rows, columns=["call_id", "agent_id", "utterance_id", "speaker", "start_s", "end_s", "text"]
    )
    settings = default_config().lexicon.behaviours
    started = time.perf_counter()
    out = behaviour_tables(utts, settings)
    took = time.perf_counter() - started
    print(
        f"{len(utts)} utterances in {args.calls} calls: {took:.2f} s, "
        f"{1e6 * took / len(utts):.0f} us per utterance; "
        f"{len(out['utterance_behaviours'])} behaviour hits"
    )


if __name__ == "__main__":
    main()
