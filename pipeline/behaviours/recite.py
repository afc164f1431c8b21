"""Reciting: how much of an agent's explanation repeats, word for word, what the same agent said
in their other calls or what the centre's knowledge-base scripts say.

An agent who reads the knowledge base aloud ("我是一个机器人吗？": 知识库的语言很公式化，你不要照念
出来) produces the same long character runs call after call; one who explains in their own words
does not, even on the same policy. So the figure is the share of the agent's explanation
characters covered by a character n-gram (8 by default: longer than any set phrase, short
enough to survive an ASR error every ten characters) that also occurs in another of the agent's
calls or in a knowledge-base file. The topic condition needs no topic model: eight identical
characters in a row do not recur across different topics.

Fixed wording that must be said the same way every time (greetings, recording and legal
notices) is cut out first: the exemption list (pipeline/data/recite_exempt.txt) is editable.
Only explanations count: agent utterances of at least `min_chars` characters after the cut, so
"好的" and "稍等" never make a call look scripted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.text import numerals_to_digits, strip_punct

KB_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class ReciteOptions:
    n: int = 8  # characters per n-gram
    min_chars: int = 20  # an agent utterance this long (after exemptions) is an explanation


@dataclass(frozen=True)
class Recital:
    agent_explanation_chars: int  # explanation characters in the call
    agent_recited_chars: int  # of those, covered by an n-gram found elsewhere
    agent_recited_share: float | None  # recited / explanation characters; None without any


def segments(text: str, exempt: Sequence[str]) -> list[str]:
    """Comparable runs of an utterance: exempt wording cut out (an n-gram must not bridge the
    cut), punctuation dropped, numerals as digits (Whisper writes 七 or 7 at random)."""
    parts = [text]
    # only the phrases in the text (one C-level search each): most utterances hold none
    for phrase in sorted((e for e in exempt if e in text), key=len, reverse=True):
        parts = [p for part in parts for p in part.split(phrase)]
    return [s for p in parts if (s := numerals_to_digits(strip_punct(p)))]


def grams(runs: Sequence[str], n: int) -> set[str]:
    return {r[i : i + n] for r in runs for i in range(len(r) - n + 1)}


def _covered(run: str, found: set[str], n: int) -> int:
    """Characters of run inside at least one n-gram in `found`."""
    covered = end = 0  # end: where the covered stretch so far ends
    for i in range(len(run) - n + 1):
        if run[i : i + n] in found:
            covered += i + n - max(i, end)
            end = i + n
    return covered


def _explains(runs: list[str], options: ReciteOptions) -> bool:
    return sum(len(r) for r in runs) >= options.min_chars


def knowledge_base(folder: Path | None, exempt: Sequence[str], n: int) -> frozenset[str]:
    """The n-grams of every .txt/.md file under the folder (the centre's scripts); none if unset."""
    if folder is None:
        return frozenset()
    out: set[str] = set()
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix in KB_SUFFIXES and path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            out |= grams([s for line in lines for s in segments(line, exempt)], n)
    return frozenset(out)


def read_exempt(path: Path) -> tuple[str, ...]:
    """One phrase a line; '#' starts a comment."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(e for line in lines if (e := re.sub(r"#.*", "", line).strip()))


def agent_recitals(
    calls: Mapping[str, Sequence[str]],
    kb: frozenset[str],
    exempt: Sequence[str],
    options: ReciteOptions,
) -> dict[str, Recital]:
    """One agent's calls (call_id -> the agent's utterance texts) -> each call's Recital."""
    n = options.n
    runs_of = {
        call_id: [runs for runs in (segments(t, exempt) for t in texts) if _explains(runs, options)]
        for call_id, texts in calls.items()
    }
    own = {c: grams([r for runs in u for r in runs], n) for c, u in runs_of.items()}
    calls_with = Counter(g for gs in own.values() for g in gs)  # in how many calls each n-gram is
    out = {}
    for call_id, utterances in runs_of.items():
        found = {g for g in own[call_id] if calls_with[g] >= 2 or g in kb}
        chars = sum(len(r) for runs in utterances for r in runs)
        recited = sum(_covered(r, found, n) for runs in utterances for r in runs)
        out[call_id] = Recital(chars, recited, recited / chars if chars else None)
    return out
