"""Explanation clarity from Chinese text (jieba): sentence length, structure markers, jargon,
the agent repeating itself, and how much the agent says per customer question.
Customer confusion and confirmation checks are phrase lists (pipeline/data/phrases.toml).
Formulas, units and thresholds: docs/METRICS.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.config import ClarityOptions
from pipeline.records import Utterance
from pipeline.text import char_ngrams, n_chars, words

_SENTENCE_END = re.compile(r"[。！？!?；;]+")


def sentences(text: str) -> list[str]:
    """Sentences by end punctuation; an unpunctuated utterance counts as one sentence."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if n_chars(s) > 0]


def jargon_hits(tokens: list[str], jargon: tuple[str, ...]) -> int:
    terms = set(jargon)
    return sum(1 for w in tokens if w in terms)


def bigram_jaccard(a: str, b: str) -> float:
    x, y = set(char_ngrams(a)), set(char_ngrams(b))
    return len(x & y) / len(x | y) if x and y else 0.0


@dataclass(frozen=True)
class Clarity:
    sentence_chars_mean: float | None
    long_sentence_share: float | None
    repeat_count: int
    chars_per_customer_turn: float | None


def call_clarity(utts: list[Utterance], options: ClarityOptions) -> Clarity:
    agent = [u for u in utts if u.speaker == "agent"]
    lengths = [n_chars(s) for u in agent for s in sentences(u.text)]
    long_share = (
        sum(1 for n in lengths if n > options.long_sentence_chars) / len(lengths)
        if lengths
        else None
    )

    # The agent repeating an explanation: a substantial utterance close to an earlier one.
    repeats = 0
    for i, u in enumerate(agent):
        if n_chars(u.text) >= options.repeat_min_chars and any(
            bigram_jaccard(u.text, prev.text) >= options.repeat_similarity for prev in agent[:i]
        ):
            repeats += 1

    # Agent characters spoken between one customer turn and the next: explanation length per question.
    answers: list[int] = []
    current: int | None = None
    for u in utts:
        if u.speaker == "customer":
            if current is not None:
                answers.append(current)
            current = 0
        elif current is not None:
            current += n_chars(u.text)
    if current:
        answers.append(current)
    return Clarity(
        sentence_chars_mean=sum(lengths) / len(lengths) if lengths else None,
        long_sentence_share=long_share,
        repeat_count=repeats,
        chars_per_customer_turn=sum(answers) / len(answers) if answers else None,
    )


def word_count_and_jargon(text: str, jargon: tuple[str, ...]) -> tuple[int, int]:
    tokens = words(text, jargon)
    return len(tokens), jargon_hits(tokens, jargon)
