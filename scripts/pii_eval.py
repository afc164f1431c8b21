"""PII recall and false-positive rate of pipeline.redact on tests/data/pii_cases.tsv.

    .venv/bin/python scripts/pii_eval.py [--cases tests/data/pii_cases.tsv]

Each case is one utterance, or several consecutive utterances of one speaker split by ‖ (fed to
`redact_utterances` 0.5 s apart, so numbers read over a pause are tested the way the pipeline
meets them).

- recall: share of expected PII items fully masked, i.e. every character of the item except
  spaces, punctuation, fillers (嗯呃啊) and ‖ lies inside a masked span (any kind of mask counts).
- false-positive rate: share of cases in which anything outside the expected PII items was
  masked. For a negative sentence that is "anything masked at all"; a positive sentence in which
  a price or date next to the phone number was masked counts too. One stray masked character
  makes the whole case a false positive, which is stricter than counting characters.
- negative FPR: the same, over the negative sentences only.

Prints both figures, recall per kind, items masked under another kind than expected, and every
failure.
"""

from __future__ import annotations

import argparse
import csv
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.redact import DEFAULT_OPTIONS, RedactOptions, redact_utterances

DEFAULT_CASES = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_cases.tsv"
SPLIT = "‖"  # between consecutive utterances of one speaker
FILLERS = "嗯呃啊"


@dataclass(frozen=True)
class Item:
    kind: str
    text: str


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    pii: tuple[Item, ...]
    note: str


@dataclass(frozen=True)
class Outcome:
    case: Case
    masked_text: str  # the utterances' masked texts joined by ‖
    missed: tuple[Item, ...]  # expected items not fully masked
    wrong_kind: tuple[tuple[Item, str], ...]  # masked, but as another kind
    stray: str  # masked characters outside every expected item


@dataclass(frozen=True)
class Scores:
    outcomes: list[Outcome]
    recall: float
    fpr: float
    negative_fpr: float
    recall_by_kind: dict[str, tuple[int, int]]  # kind -> (masked, expected)


def load_cases(path: Path = DEFAULT_CASES) -> list[Case]:
    with open(path, encoding="utf-8", newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    cases = []
    for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        items = []
        for entry in filter(None, row["pii"].split("|")):
            kind, _, text = entry.partition(":")
            if row["text"].count(text) != 1:
                raise ValueError(f"{row['id']}: {text!r} must occur exactly once in the text")
            items.append(Item(kind, text))
        cases.append(Case(row["id"], row["text"], tuple(items), row["note"]))
    return cases


def _ignorable(ch: str) -> bool:
    """Characters of an expected item that carry no PII: ‖, spaces, punctuation, fillers."""
    return ch in SPLIT + FILLERS or ch.isspace() or unicodedata.category(ch)[0] == "P"


def run_case(case: Case, options: RedactOptions = DEFAULT_OPTIONS) -> Outcome:
    texts = case.text.split(SPLIT)
    utterances = [("customer", 2.0 * k, 2.0 * k + 1.5, t) for k, t in enumerate(texts)]
    redacted = redact_utterances(utterances, options)
    # kind of each masked character, by position in case.text
    masked: dict[int, str] = {}
    offset = 0
    for text, r in zip(texts, redacted, strict=True):
        for span in r.spans:
            masked.update(
                dict.fromkeys(range(offset + span.start_char, offset + span.end_char), span.kind)
            )
        offset += len(text) + len(SPLIT)

    missed, wrong_kind, expected = [], [], set()
    for item in case.pii:
        start = case.text.index(item.text)
        chars = [i for i in range(start, start + len(item.text)) if not _ignorable(case.text[i])]
        expected.update(range(start, start + len(item.text)))
        if not all(i in masked for i in chars):
            missed.append(item)
            continue
        kinds = Counter(masked[i] for i in chars)
        kind = kinds.most_common(1)[0][0]
        if kind != item.kind:
            wrong_kind.append((item, kind))
    stray = "".join(case.text[i] for i in sorted(masked) if i not in expected)
    masked_text = SPLIT.join(r.text for r in redacted)
    return Outcome(case, masked_text, tuple(missed), tuple(wrong_kind), stray)


def evaluate(cases: list[Case], options: RedactOptions = DEFAULT_OPTIONS) -> Scores:
    outcomes = [run_case(c, options) for c in cases]
    by_kind: dict[str, list[int]] = {}
    for o in outcomes:
        for item in o.case.pii:
            counts = by_kind.setdefault(item.kind, [0, 0])
            counts[0] += item not in o.missed
            counts[1] += 1
    n_items = sum(n for _, n in by_kind.values())
    negatives = [o for o in outcomes if not o.case.pii]
    return Scores(
        outcomes=outcomes,
        recall=sum(m for m, _ in by_kind.values()) / max(n_items, 1),
        fpr=sum(bool(o.stray) for o in outcomes) / max(len(outcomes), 1),
        negative_fpr=sum(bool(o.stray) for o in negatives) / max(len(negatives), 1),
        recall_by_kind={k: (m, n) for k, (m, n) in sorted(by_kind.items())},
    )


def report(scores: Scores) -> str:
    outcomes = scores.outcomes
    n_pos = sum(bool(o.case.pii) for o in outcomes)
    n_items = sum(n for _, n in scores.recall_by_kind.values())
    n_fp = sum(bool(o.stray) for o in outcomes)
    lines = [
        f"cases: {len(outcomes)} ({n_pos} with PII, {len(outcomes) - n_pos} without); "
        f"PII items: {n_items}",
        f"recall:               {scores.recall:.1%}  (items fully masked)",
        f"false-positive rate:  {scores.fpr:.1%}  ({n_fp} of {len(outcomes)} cases with anything "
        "masked outside the PII)",
        f"negative-only FPR:    {scores.negative_fpr:.1%}",
        "recall by kind:",
    ]
    lines += [f"  {k:<7} {m}/{n}" for k, (m, n) in scores.recall_by_kind.items()]
    wrong = [(o, item, kind) for o in outcomes for item, kind in o.wrong_kind]
    if wrong:
        lines.append("masked under another kind (still counted as masked):")
        lines += [
            f"  {o.case.id} {item.text!r}: {kind}, expected {item.kind}" for o, item, kind in wrong
        ]
    failures = [o for o in outcomes if o.missed or o.stray]
    lines.append(f"failures: {len(failures)}")
    for o in failures:
        lines.append(f"  {o.case.id} {o.case.text}  ->  {o.masked_text}")
        lines += [f"      missed {item.kind}: {item.text}" for item in o.missed]
        if o.stray:
            lines.append(f"      masked outside the PII: {o.stray!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    args = parser.parse_args(argv)
    print(report(evaluate(load_cases(args.cases))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
