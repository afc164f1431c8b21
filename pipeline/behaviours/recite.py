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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    runs_of = {
        call_id: [r for t in texts if _explains(runs := segments(t, exempt), options) for r in runs]
        for call_id, texts in calls.items()
    }
    chars, recited = covered_chars(list(runs_of.values()), kb, options.n)
    return {
        call_id: Recital(int(c), int(r), float(r / c) if c else None)
        for call_id, c, r in zip(runs_of, chars, recited, strict=True)
    }


def covered_chars(
    calls: Sequence[Sequence[str]], kb: frozenset[str], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per call (its explanation runs): characters, and characters inside an n-gram that also
    occurs in another of the calls or in `kb`.

    In numpy over one array of all the calls' characters: the n-grams as rows of n code points,
    numbered exactly by np.unique; a Python set and Counter per call cost most of a night's
    derive (an agent's calls hold tens of thousands of n-grams each night they are compared).
    """
    lengths = np.array([len(r) for runs in calls for r in runs], dtype=np.int64)
    owner = np.repeat(np.arange(len(calls)), [len(runs) for runs in calls])
    chars = np.bincount(owner, weights=lengths, minlength=len(calls)).astype(np.int64)
    recited = np.zeros(len(calls), dtype=np.int64)
    # each run followed by one padding slot, so no window is cut from two runs
    codes = np.frombuffer(
        "".join(r + "\0" for runs in calls for r in runs).encode("utf-32-le"), dtype=np.uint32
    )
    run_end = np.repeat(np.cumsum(lengths + 1) - 1, lengths + 1)  # the padding slot of the run
    starts = np.flatnonzero(np.arange(len(codes)) + n <= run_end)  # windows inside one run
    if not len(starts):
        return chars, recited
    call_at = np.repeat(owner, lengths + 1)
    rows = np.lib.stride_tricks.sliding_window_view(codes, n)[starts]
    keys = np.ascontiguousarray(rows).view(np.dtype((np.void, 4 * n))).ravel()
    unique, gram = np.unique(keys, return_inverse=True)
    gram = gram.ravel()
    # in how many calls each n-gram occurs: distinct (n-gram, call) pairs counted per n-gram
    pairs = np.unique(gram * len(calls) + call_at[starts])
    found = np.bincount(pairs // len(calls), minlength=len(unique)) >= 2
    if kb:
        words = unique.view(np.uint32).reshape(-1, n)
        found |= np.fromiter(
            (w.tobytes().decode("utf-32-le") in kb for w in words), bool, len(unique)
        )
    hit = starts[found[gram]]
    # characters inside at least one found window: +1 where a window starts, -1 past its end
    depth = np.cumsum(
        np.bincount(hit, minlength=len(codes) + 1) - np.bincount(hit + n, minlength=len(codes) + 1)
    )[: len(codes)]
    recited = np.bincount(call_at[depth > 0], minlength=len(calls)).astype(np.int64)
    return chars, recited
