"""Finding a Matcher's phrases and expressions in one turn's text.

Transcripts carry ASR errors: Whisper swaps a homophone (理解 -> 里解) or a near character.
A phrase of `min_chars` or more characters therefore also matches a same-length stretch that
differs in one character; shorter phrases (不行, 没办法) must match exactly, since one changed
character in three is another word. Exemptions always match exactly: they carve out known
harmless readings, and widening them would hide real hits.
"""

from __future__ import annotations

from functools import lru_cache

from pipeline.behaviours.spec import Matcher, fold

Span = tuple[int, int]


def _exact(text: str, phrase: str) -> list[Span]:
    out, start = [], text.find(phrase)
    while start >= 0:
        out.append((start, start + len(phrase)))
        start = text.find(phrase, start + 1)
    return out


def _one_off(text: str, phrase: str) -> list[Span]:
    """Stretches of text that equal the phrase but for at most one character.

    One substitution leaves either the phrase's first half or its second half intact, so only
    windows around an exact occurrence of a half are compared: a handful per turn.
    """
    n, half = len(phrase), len(phrase) // 2
    starts = {s for s, _ in _exact(text, phrase[:half])}
    starts |= {s - half for s, _ in _exact(text, phrase[half:])}
    out = []
    for s in sorted(starts):
        window = text[s : s + n] if s >= 0 else ""
        if len(window) == n and sum(a != b for a, b in zip(window, phrase, strict=True)) <= 1:
            out.append((s, s + n))
    return out


@lru_cache(maxsize=512)
def _plan(
    phrases: tuple[str, ...], min_chars: int, fuzzy: bool
) -> tuple[tuple[str, str, str], ...]:
    """(phrase, what must occur, or else what must occur) per phrase: the phrase and "" when it
    matches exactly, its two halves when one substituted character is tolerated; folded as
    the text is (spec.fold), a phrase the fold makes a duplicate of another dropped."""
    return tuple(
        (p, p[: len(p) // 2], p[len(p) // 2 :]) if fuzzy and len(p) >= min_chars else (p, p, "")
        for p in dict.fromkeys(fold(p) for p in phrases)
    )


def _overlaps(span: Span, others: list[Span]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in others)


def find(text: str, matcher: Matcher, min_chars: int) -> list[Span]:
    """Every span of text the matcher hits, exempt stretches removed, in text order (the longest
    first where several start together: the evidence quotes 我没说错, not 我没说). The text is
    compared folded (你 as 您: spec.fold); the spans index the text as given."""
    text = fold(text)
    spans: list[Span] = []
    for phrase, first, second in _plan(matcher.phrases, min_chars, matcher.fuzzy):
        # two substring tests settle the common case (no phrase of the list in the turn): a
        # night recomputes millions of utterances
        if first in text or (second and second in text):
            spans += _one_off(text, phrase) if second else _exact(text, phrase)
    spans += [m.span() for r in matcher.regexes for m in r.finditer(text) if m.end() > m.start()]
    if not spans:
        return []
    exempt = [s for p in matcher.exempt for s in _exact(text, fold(p))]
    exempt += [m.span() for r in matcher.exempt_regexes for m in r.finditer(text)]
    return sorted((s for s in set(spans) if not _overlaps(s, exempt)), key=lambda s: (s[0], -s[1]))
