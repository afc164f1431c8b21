"""Precision and recall of the behaviour detector on hand-labelled snippets
(tests/data/behaviours/, labelling rules in LABELLING.md), clean and with transcript noise.

Scoring, per behaviour, over that behaviour's rows only: a row labelled with a kind is a true
positive when the detector gives that kind, a false negative otherwise; a detection of any kind
that differs from the label (including on a `none` row) is a false positive. So an alternative
read as a refusal costs both precision and recall.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from pipeline.behaviours.detect import detect_turn
from pipeline.behaviours.spec import BehaviourSpec


@dataclass(frozen=True)
class Snippet:
    id: str
    behaviour: str
    label: str  # a kind of the behaviour, or "none"
    customer: str
    agent: str


@dataclass(frozen=True)
class Score:
    behaviour: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


def read_snippets(path: Path) -> list[Snippet]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            Snippet(r["id"], r["behaviour"], r["label"], r["customer"] or "", r["agent"])
            for r in rows
        ]


def predicted(spec: BehaviourSpec, s: Snippet) -> str:
    hits = detect_turn(spec, s.customer, s.agent)
    return next((h.kind for h in hits if h.behaviour == s.behaviour), "none")


def score(spec: BehaviourSpec, snippets: list[Snippet]) -> list[Score]:
    out = []
    for b in spec.behaviours:
        tp = fp = fn = 0
        for s in (s for s in snippets if s.behaviour == b.name):
            got = predicted(spec, s)
            tp += got == s.label != "none"
            fn += s.label != "none" and got != s.label
            fp += got != "none" and got != s.label
        out.append(Score(b.name, tp, fp, fn))
    return out


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def add_noise(text: str, rate: float, pool: str, rng: random.Random) -> str:
    """Each Chinese character replaced, with probability `rate`, by another drawn from `pool`
    (the characters of the snippet set: common words, as ASR substitutions mostly are)."""
    out = []
    for ch in text:
        if _is_han(ch) and rng.random() < rate:
            ch = rng.choice([c for c in rng.sample(pool, 2) if c != ch] or [ch])
        out.append(ch)
    return "".join(out)


def noisy(snippets: list[Snippet], rate: float, seed: int) -> list[Snippet]:
    """The snippets with `rate` of their characters substituted (both turns), seeded."""
    rng = random.Random(seed)
    pool = "".join(sorted({c for s in snippets for c in s.customer + s.agent if _is_han(c)}))
    return [
        Snippet(
            s.id,
            s.behaviour,
            s.label,
            add_noise(s.customer, rate, pool, rng),
            add_noise(s.agent, rate, pool, rng),
        )
        for s in snippets
    ]


def noisy_recall(
    spec: BehaviourSpec, snippets: list[Snippet], rate: float, seeds: range
) -> dict[str, float | None]:
    """Recall per behaviour under noise, pooled over several seeds (one draw is too lumpy on
    sixteen positives to quote)."""
    totals: dict[str, list[int]] = {b.name: [0, 0] for b in spec.behaviours}
    for seed in seeds:
        for sc in score(spec, noisy(snippets, rate, seed)):
            totals[sc.behaviour][0] += sc.tp
            totals[sc.behaviour][1] += sc.tp + sc.fn
    return {name: tp / n if n else None for name, (tp, n) in totals.items()}
