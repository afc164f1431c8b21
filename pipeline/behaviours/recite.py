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
import pandas as pd

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
    return segments_of([text], exempt)[0]


def segments_of(texts: Sequence[str], exempt: Sequence[str]) -> list[list[str]]:
    """segments() of many utterances, with one pass of each expression over all their pieces
    joined (hundreds of thousands of small substitutions were half of reciting's cost)."""
    pieces = [_cut(t, exempt) for t in texts]
    flat = [p for parts in pieces for p in parts]
    joined = "\0".join(flat)
    if "\0" in "".join(flat):  # a piece holding the joint itself: one at a time
        cleaned = [numerals_to_digits(strip_punct(p)) for p in flat]
    else:  # neither expression matches the joint, nor any run across it
        cleaned = numerals_to_digits(strip_punct(joined)).split("\0")
    out, k = [], 0
    for parts in pieces:
        out.append([s for s in cleaned[k : k + len(parts)] if s])
        k += len(parts)
    return out


def _cut(text: str, exempt: Sequence[str]) -> list[str]:
    parts = [text]
    # only the phrases in the text (one C-level search each): most utterances hold none
    for phrase in sorted((e for e in exempt if e in text), key=len, reverse=True):
        parts = [p for part in parts for p in part.split(phrase)]
    return parts


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
    texts = [t for ts in calls.values() for t in ts]
    cut = iter(segments_of(texts, exempt))
    runs_of = {
        call_id: [r for runs in (next(cut) for _ in ts) if _explains(runs, options) for r in runs]
        for call_id, ts in calls.items()
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

    In numpy over one array of all the calls' characters, the n-grams numbered exactly
    (_gram_ids); a Python set and Counter per call cost most of a night's derive (an agent's
    calls hold tens of thousands of n-grams each night they are compared).
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
    gram = _gram_ids(codes, n)[starts]
    n_grams = int(gram.max()) + 1
    # in two calls or more: its first and last calls differ (ufunc.at, unlike counting distinct
    # pairs with np.unique, is one pass)
    call = call_at[starts]
    first, last = np.full(n_grams, len(calls)), np.full(n_grams, -1)
    np.minimum.at(first, gram, call)
    np.maximum.at(last, gram, call)
    found = first != last
    if kb:  # each n-gram's text, from one place it occurs
        at = np.zeros(n_grams, dtype=np.int64)
        np.maximum.at(at, gram, starts)
        found |= np.fromiter(
            (codes[i : i + n].tobytes().decode("utf-32-le") in kb for i in at), bool, n_grams
        )
    hit = starts[found[gram]]
    # characters inside at least one found window: +1 where a window starts, -1 past its end
    depth = np.cumsum(
        np.bincount(hit, minlength=len(codes) + 1) - np.bincount(hit + n, minlength=len(codes) + 1)
    )[: len(codes)]
    recited = np.bincount(call_at[depth > 0], minlength=len(calls)).astype(np.int64)
    return chars, recited


def _gram_ids(codes: np.ndarray, n: int) -> np.ndarray:
    """Per position, a number for the n characters starting there: equal numbers for equal
    strings, exactly (numbers of windows running past the end mean nothing). Built by doubling:
    the 2-grams from pairs of characters' numbers, the 4-grams from pairs of 2-grams' and so on,
    each pair numbered by pandas' hash factorisation, then n put together from its binary
    digits."""
    ids = {1: pd.factorize(codes)[0].astype(np.int64)}
    length = 1
    while length * 2 <= n:
        ids[length * 2] = _pair_ids(ids[length], _shifted(ids[length], length))
        length *= 2
    out, offset = None, 0
    while length:
        if n & length:
            part = _shifted(ids[length], offset)
            out = part if out is None else _pair_ids(out, part)
            offset += length
        length //= 2
    return out


def _shifted(ids: np.ndarray, by: int) -> np.ndarray:
    return np.concatenate([ids[by:], np.zeros(min(by, len(ids)), dtype=ids.dtype)])


def _pair_ids(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return pd.factorize(a * (int(b.max()) + 1) + b)[0].astype(np.int64)
