"""PII redaction that holds on speech: phone, PRC ID and bank card numbers, e-mail addresses.

Whisper writes a number the way it heard it: "13812345678", "138 0013 8000",
"一三八零零一三八零零零", "幺三八 1234 五六七八", and a customer who pauses while reading a card
number leaves it split over two utterances. This module finds such numbers in all those forms,
tells them apart from the numbers QA needs to read (prices, counts, dates, times) and returns the
masked text with the masked spans, so that the report can mute the same stretches of audio.

How `find_pii` reads a text, in the order of this file:

1. E-mail addresses, written (wang@qq.com) or spoken (wang 艾特 qq 点 com, wang at qq dot com),
   then times and dates (14:30, 2024-03-15), are set aside so their digits never join a number.
2. Digit runs: 0-9, full-width ０-９ and the spoken numerals 零〇一二三四五六七八九, 幺 (1) and
   两 (2), with up to `max_gap` separators between two digits (spaces, '-', '，', '、', brackets,
   嗯, 呃).
3. A run that reads as a value stays: beside a positional unit (一百五十八: 十百千万亿), money
   (299元, ¥), a decimal point or a measure word (两件, 三个订单); without a keyword before it,
   also a range (1500-3000), a list (50、100、200), thousands commas (1,234,567) or a round
   amount (1000000).
   A value has a plausible size: a run of more than `max_value_digits` written digits, or of
   `min_digits` numerals read one by one, is never one (round amounts and thousands commas
   aside), whatever unit follows it.
   Numerals at a run's edges that belong to the words beside it are left out of it first: after
   the last written digit (13912345678一共), forming a word with the next character (一直, 两点:
   pipeline/data/numeral_words.txt), counting the measure word after a run too long to be a
   value (卡号...三天), or ending a word begun before it (唯一1234567890).
4. Any other run with at least `min_digits` digits is masked. Its kind comes from a keyword just
   before it (身份证, 卡号, 电话...) or else from its shape: 11 digits from 13-19 or 0 + area code
   is a phone, 17 digits + X or 18 with a birth date an ID, 16-19 digits a bank card; anything
   else is a plain number (order, QQ, account numbers: seven digits carry no QA meaning).

`redact_utterances` also joins consecutive utterances of the same speaker, so that a number read
over a pause is masked in both parts, and times each masked span within its utterance.
Everything here is pure: text in, text and spans out.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from pipeline.digit_runs import (
    BLANK,
    DATE,
    DEFAULT_OPTIONS,
    DIGIT_VALUE,
    EMAIL_SPOKEN,
    EMAIL_WRITTEN,
    GAP_MARKS,
    TIME,
    Kind,
    RedactOptions,
    Span,
    judge_run,
    run_pattern,
)

# The masking rules' version, stored with each call (calls.masker_version). Bump it whenever the
# rules mask something they let through before: text stored under an older version is masked
# again on the next run (docs/CONTRACTS.md, "When the masking rules change").
MASKER_VERSION = 2

__all__ = [
    "DEFAULT_OPTIONS",
    "MASKER_VERSION",
    "Kind",
    "RedactOptions",
    "RedactedUtterance",
    "Span",
    "TimedSpan",
    "find_pii",
    "mute_ranges",
    "redact",
    "redact_utterances",
]


@dataclass(frozen=True)
class TimedSpan:
    """A masked span of one utterance, with its estimated time in the call (seconds)."""

    utterance_index: int  # position in the list given to redact_utterances
    kind: Kind
    start_char: int  # in the utterance's original text
    end_char: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class RedactedUtterance:
    """One utterance after redaction. It never holds the raw text."""

    index: int  # position in the list given to redact_utterances
    speaker: str
    start_s: float
    end_s: float
    text: str  # masked
    spans: tuple[TimedSpan, ...]


# speaker, start_s, end_s, text: what redact_utterances reads from each utterance
UtteranceText = tuple[str, float, float, str]

# --- one text --------------------------------------------------------------------------------


def _digit_near(blanked: str, i: int, step: int, max_gap: int) -> bool:
    """Whether a digit is at i, or further in direction `step` across at most max_gap
    separators."""
    for _ in range(max_gap + 1):
        if not 0 <= i < len(blanked):
            return False
        ch = blanked[i]
        if ch in DIGIT_VALUE:
            return True
        if not (ch.isspace() or ch in GAP_MARKS):
            return False
        i += step
    return False


def _blank(text: str, ranges: Iterable[tuple[int, int]]) -> str:
    """`text` with each (start, end) range overwritten by BLANK."""
    chars = list(text)
    for start, end in ranges:
        chars[start:end] = BLANK * (end - start)
    return "".join(chars)


@lru_cache(maxsize=8)
def _token_pattern(options: RedactOptions) -> re.Pattern[str] | None:
    kinds: tuple[Kind, ...] = ("phone", "id", "card", "email", "number")
    tokens = sorted({options.token(k) for k in kinds if options.token(k)}, key=len, reverse=True)
    return re.compile("|".join(re.escape(t) for t in tokens)) if tokens else None


def _blank_tokens(text: str, options: RedactOptions) -> str:
    """Mask tokens already in the text become opaque, so redacting twice changes nothing."""
    pattern = _token_pattern(options)
    return _blank(text, (m.span() for m in pattern.finditer(text))) if pattern else text


def find_pii(text: str, options: RedactOptions = DEFAULT_OPTIONS) -> list[Span]:
    """PII spans of `text`, sorted and non-overlapping."""
    blanked = _blank_tokens(text, options)
    spans: list[Span] = []
    if options.mask_emails:
        for pattern in (EMAIL_WRITTEN, EMAIL_SPOKEN):
            found = [Span("email", m.start(), m.end()) for m in pattern.finditer(blanked)]
            blanked = _blank(blanked, ((s.start_char, s.end_char) for s in found))
            spans += found
    blanked = _blank(blanked, (m.span() for m in TIME.finditer(blanked)))
    dates = [  # a "date" with more digits around it is part of a number
        m.span()
        for m in DATE.finditer(blanked)
        if not _digit_near(blanked, m.start() - 1, -1, options.max_gap)
        and not _digit_near(blanked, m.end(), 1, options.max_gap)
    ]
    blanked = _blank(blanked, dates)
    for m in run_pattern(options.max_gap).finditer(blanked):
        spans += judge_run(blanked, m.start(), m.end(), options)
    return sorted(spans, key=lambda s: s.start_char)


def _apply(text: str, spans: Sequence[Span], options: RedactOptions) -> str:
    """`text` with each span replaced by its kind's token; spans sorted and disjoint."""
    out, pos = [], 0
    for span in spans:
        out += [text[pos : span.start_char], options.token(span.kind)]
        pos = span.end_char
    out.append(text[pos:])
    return "".join(out)


def redact(text: str, options: RedactOptions = DEFAULT_OPTIONS) -> tuple[str, list[Span]]:
    """(masked text, spans on the original text). `redact(t)[0]` replaces today's mask_pii."""
    spans = find_pii(text, options)
    return _apply(text, spans, options), spans


# --- utterances: numbers split over a pause, and timing ---------------------------------------

_FILLERS = frozenset("嗯呃啊")


def _inner(text: str) -> tuple[int, int]:
    """(lo, hi) such that text[lo:hi] drops the punctuation, spaces and fillers at both edges:
    an utterance edge is a pause, and a pause may fall inside a number."""

    def is_edge(ch: str) -> bool:
        return ch in _FILLERS or not ch.isalnum()

    lo, hi = 0, len(text)
    while lo < hi and is_edge(text[lo]):
        lo += 1
    while hi > lo and is_edge(text[hi - 1]):
        hi -= 1
    return lo, hi


def _chains(utterances: Sequence[UtteranceText], join_gap_s: float) -> Iterator[list[int]]:
    """Indices of each speaker's consecutive utterances at most join_gap_s apart."""
    open_chain: dict[str, list[int]] = {}
    for i, (speaker, start_s, _, _) in enumerate(utterances):
        chain = open_chain.get(speaker)
        if chain and start_s - utterances[chain[-1]][2] <= join_gap_s:
            chain.append(i)
            continue
        if chain and len(chain) > 1:
            yield chain
        open_chain[speaker] = [i]
    yield from (chain for chain in open_chain.values() if len(chain) > 1)


def _spans_across(
    chain: list[int], utterances: Sequence[UtteranceText], options: RedactOptions
) -> Iterator[tuple[int, Span]]:
    """(utterance index, span) for the parts of numbers that run over an utterance boundary.

    The chain's texts are joined with a space, minus the punctuation and fillers at each edge;
    only spans that cross a boundary are kept: joining can add masking, never remove it.
    """
    parts: list[tuple[int, int, int, int]] = []  # (utterance, offset in joined, lo, hi)
    joined = ""
    for i in chain:
        text = utterances[i][3]
        lo, hi = _inner(text)
        joined += " " if joined else ""
        parts.append((i, len(joined), lo, hi))
        joined += text[lo:hi]
    offsets = [offset for _, offset, _, _ in parts]
    for span in find_pii(joined, options):
        pieces = []
        first = max(0, bisect_right(offsets, span.start_char) - 1)  # the part the span starts in
        for i, offset, lo, hi in parts[first:]:
            if offset >= span.end_char:
                break
            start = max(span.start_char, offset)
            end = min(span.end_char, offset + hi - lo)
            if start < end:
                pieces.append((i, Span(span.kind, start - offset + lo, end - offset + lo)))
        if len(pieces) > 1:
            yield from pieces


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, overlapping spans merged; a specific kind beats `number`, then the longer one."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start_char, -s.end_char)):
        if merged and span.start_char < merged[-1].end_char:
            last = merged.pop()
            rank = [(s.kind != "number", s.end_char - s.start_char) for s in (last, span)]
            kind = last.kind if rank[0] >= rank[1] else span.kind
            span = Span(kind, last.start_char, max(last.end_char, span.end_char))
        merged.append(span)
    return merged


_PAUSE_MARKS = frozenset("，。？！；：,.?!;:")


def _weight(ch: str) -> float:
    """Rough speaking time of a character: a Chinese character or digit is one syllable, a Latin
    letter about 0.4 of one; a comma or full stop about one too (Whisper writes them where the
    speaker paused: 一三九零零一二三四五六，记下了 has a breath before 记下了), other punctuation
    and whitespace none."""
    if ch in _PAUSE_MARKS:
        return 1.0
    if ch.isspace() or unicodedata.category(ch)[0] in "PZC":
        return 0.0
    return 0.4 if ch.isascii() and ch.isalpha() else 1.0


def _timing(
    text: str, start_s: float, end_s: float, span: Span, pad_s: float
) -> tuple[float, float]:
    """Estimated time of a span: its position in the text's speaking weight, mapped linearly
    onto the utterance's time (all the timing an utterance has), padded. The padding may reach
    past the utterance's edges: VAD can start an utterance a little after the first syllable,
    and a number read first would then keep its first digit audible."""
    weights = [_weight(ch) for ch in text.rstrip("".join(_PAUSE_MARKS) + " ")]
    weights += [0.0] * (len(text) - len(weights))  # the last mark is the end, not a pause
    total = sum(weights)
    if total <= 0 or end_s <= start_s:
        return start_s, end_s
    rate = (end_s - start_s) / total
    t0 = start_s + rate * sum(weights[: span.start_char]) - pad_s
    t1 = start_s + rate * sum(weights[: span.end_char]) + pad_s
    return max(0.0, start_s - pad_s, t0), min(end_s + pad_s, t1)


def redact_utterances(
    utterances: Sequence[UtteranceText], options: RedactOptions = DEFAULT_OPTIONS
) -> list[RedactedUtterance]:
    """Redact a call's utterances (speaker, start_s, end_s, text), in time order.

    A number read over a pause by one speaker ("我的手机号是一三八" / "零零一二 三四五六") is
    masked in both utterances; utterances of different speakers are never joined.
    """
    found: list[list[Span]] = [find_pii(u[3], options) for u in utterances]
    for chain in _chains(utterances, options.join_gap_s):
        for i, span in _spans_across(chain, utterances, options):
            found[i].append(span)
    out = []
    for i, ((speaker, start_s, end_s, text), spans) in enumerate(
        zip(utterances, found, strict=True)
    ):
        merged = _merge(spans)
        timed = tuple(
            TimedSpan(
                i,
                s.kind,
                s.start_char,
                s.end_char,
                *_timing(text, start_s, end_s, s, options.mute_pad_s),
            )
            for s in merged
        )
        out.append(
            RedactedUtterance(i, speaker, start_s, end_s, _apply(text, merged, options), timed)
        )
    return out


def retime(
    redacted: RedactedUtterance,
    char_times: Sequence[tuple[float, float]],
    pad_s: float = DEFAULT_OPTIONS.mute_pad_s,
) -> RedactedUtterance:
    """The utterance with its spans timed from when each character was spoken (seconds from
    the utterance's start, one pair per character of its original text: pipeline.asr.timing)
    instead of by the character share, padded as before."""
    spans = tuple(
        replace(
            s,
            start_s=max(0.0, redacted.start_s + char_times[s.start_char][0] - pad_s),
            end_s=redacted.start_s + char_times[s.end_char - 1][1] + pad_s,
        )
        for s in redacted.spans
    )
    return replace(redacted, spans=spans)


def mute_ranges(redacted: Iterable[RedactedUtterance]) -> list[tuple[float, float]]:
    """The (start_s, end_s) stretches of a call to mute, sorted, overlaps merged."""
    ranges = sorted((s.start_s, s.end_s) for u in redacted for s in u.spans)
    merged: list[tuple[float, float]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
