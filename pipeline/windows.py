"""Packing speech into Whisper windows, and mapping timed text back onto it.

Whisper's encoder always looks at 30 s, so decoding each short turn alone would spend most of
the encoder on padding. Instead each speaker's consecutive segments (a mono call: all its
speech, in time order) are concatenated into windows of up to 30 s with a short silence between
them; Whisper's timestamped text is then given back to the segments it overlaps. `pipeline/transcribe.py` decodes the windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from whisper.tokenizer import Tokenizer

from pipeline.asr_options import CLAUSE_ENDS
from pipeline.audio import SAMPLE_RATE
from pipeline.config import AsrOptions
from pipeline.records import CallAudio, Segment, Speaker
from pipeline.text import is_hallucination

TimedText = tuple[float, float, str]  # (start_s, end_s) within a window, and the text
TOUCH_S = 0.02  # segments closer than this are one stretch of speech (voice turns are 10 ms frames)


@dataclass(frozen=True)
class Piece:
    """One VAD segment placed in a window: its source times and where it sits in the window.

    The clip starts `lead_s` before the VAD speech, so Whisper hears a turn's first syllable
    (the VAD fires a little after a soft onset, and Whisper then drops the word).
    """

    segment: Segment
    offset_s: float  # where the clip (lead included) starts within the window
    lead_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.segment.end_s - self.segment.start_s

    @property
    def speech(self) -> tuple[float, float]:
        """Where the VAD speech lies within the window."""
        start = self.offset_s + self.lead_s
        return start, start + self.duration_s

    @property
    def span(self) -> tuple[float, float]:
        """Where the whole clip lies within the window."""
        return self.offset_s, self.speech[1]

    def shifted(self, by_s: float) -> Piece:
        return Piece(self.segment, self.offset_s - by_s, self.lead_s)


@dataclass(frozen=True)
class Window:
    call_id: str
    audio: np.ndarray
    pieces: tuple[Piece, ...]


def onset_lead(seg: Segment, heard: list[Segment], pad_s: float) -> float:
    """Recording to keep before a segment: up to `pad_s`, never more than half the pause since
    the previous segment heard on the same track (a mono call's other speaker included), so no
    word is heard in two clips. Nothing after the segment: measured, a trailing pad cost CER."""
    if pad_s <= 0:
        return 0.0
    if any(s is not seg and s.start_s < seg.end_s and s.end_s > seg.start_s for s in heard):
        return 0.0  # overlapping speech (a mono mix): what precedes it is someone else's words
    before = max((s.end_s for s in heard if s is not seg and s.end_s <= seg.start_s), default=None)
    lead = seg.start_s if before is None else (seg.start_s - before) / 2
    return max(0.0, min(pad_s, lead))


def touching_groups(segments: list[Segment], max_s: float) -> list[list[Segment]]:
    """Segments in time order, those that touch (one voice handing over to the other inside
    one stretch of speech) grouped, each group at most `max_s` long."""
    groups: list[list[Segment]] = []
    for seg in sorted(segments, key=lambda s: s.start_s):
        last = groups[-1] if groups else None
        if (
            last is not None
            and seg.start_s - last[-1].end_s <= TOUCH_S
            and seg.end_s - last[0].start_s <= max_s
        ):
            last.append(seg)
        else:
            groups.append([seg])
    return groups


def pack_windows(
    call_id: str, audio: CallAudio, segments: list[Segment], options: AsrOptions
) -> list[Window]:
    """Stereo: concatenate each speaker's segments, in order, into windows of at most
    `window_s`. Mono: the whole track's speech in time order, whoever speaks, so the words do
    not depend on the voice split (as WhisperX transcribes before it assigns speakers); each
    voice turn stays a piece of its own, so the text is given back to the voice it lies in."""
    if audio.is_mono:
        groups = touching_groups(segments, options.window_s - options.onset_s)
        return _pack(call_id, audio, "agent", groups, options)
    windows: list[Window] = []
    for speaker in ("agent", "customer"):
        own = [[s] for s in segments if s.speaker == speaker]
        windows += _pack(call_id, audio, speaker, own, options)
    return windows


def _pack(
    call_id: str,
    audio: CallAudio,
    track: Speaker,
    groups: list[list[Segment]],
    options: AsrOptions,
) -> list[Window]:
    """Groups of touching segments, in order, as one clip each, into windows of `window_s`."""
    windows: list[Window] = []
    gap = np.zeros(int(options.gap_s * SAMPLE_RATE), dtype=np.float32)
    spans = [g[0] if len(g) == 1 else Segment(g[0].start_s, g[-1].end_s, track) for g in groups]
    clips: list[np.ndarray] = []
    pieces: list[Piece] = []
    used = 0.0
    for group, span in zip(groups, spans, strict=True):
        lead = onset_lead(span, spans, options.onset_s)
        clip = audio.clip(track, span.start_s - lead, span.end_s)
        clip = clip[: int(options.window_s * SAMPLE_RATE)]
        length = len(clip) / SAMPLE_RATE
        if pieces and used + options.gap_s + length > options.window_s:
            windows.append(Window(call_id, np.concatenate(clips), tuple(pieces)))
            clips, pieces, used = [], [], 0.0
        if pieces:
            clips.append(gap)
            used += options.gap_s
        pieces.append(Piece(group[0], used, lead))
        pieces += [Piece(s, used + lead + s.start_s - span.start_s) for s in group[1:]]
        clips.append(clip)
        used += length
    if pieces:
        windows.append(Window(call_id, np.concatenate(clips), tuple(pieces)))
    return windows


def timed_segments(tokens: list[int], tokenizer: Tokenizer, end_s: float) -> list[TimedText]:
    """Split a decoded token list at Whisper's timestamp tokens into (start, end, text)."""
    out: list[TimedText] = []
    start: float | None = None
    text_tokens: list[int] = []
    for tok in tokens:
        if tok >= tokenizer.timestamp_begin:
            t = (tok - tokenizer.timestamp_begin) * 0.02
            if text_tokens:
                out.append((start or 0.0, t, tokenizer.decode(text_tokens)))
                text_tokens, start = [], None
            else:
                start = t
        elif tok < tokenizer.eot:
            text_tokens.append(tok)
    if text_tokens:
        out.append((start or 0.0, end_s, tokenizer.decode(text_tokens)))
    return out


def assign_texts(
    pieces: tuple[Piece, ...], timed: list[TimedText], options: AsrOptions
) -> tuple[tuple[tuple[str, ...], ...], tuple[float, ...]]:
    """Give each timed text to the piece(s) it overlaps; split it by overlap when it spans two.

    Returns the texts per piece and the seconds of each piece's speech covered by timed text.
    """
    spans = [p.span for p in pieces]
    texts: list[list[str]] = [[] for _ in pieces]
    covered = [0.0] * len(pieces)
    for start, end, raw in timed:
        text = raw.strip()
        if not text or is_hallucination(text, options.hallucinations):
            continue
        covered = [
            c + max(0.0, min(end, p.speech[1]) - max(start, p.speech[0]))
            for c, p in zip(covered, pieces, strict=True)
        ]
        overlaps = [max(0.0, min(end, b) - max(start, a)) for a, b in spans]
        total = sum(overlaps)
        if total <= 0:  # timestamp outside every piece: give it to the nearest
            mid = (start + end) / 2
            nearest = min(
                range(len(spans)), key=lambda i: min(abs(mid - spans[i][0]), abs(mid - spans[i][1]))
            )
            texts[nearest].append(text)
            continue
        shares = [o / total for o in overlaps]
        if max(shares) > options.whole_piece_share:
            texts[int(np.argmax(shares))].append(text)
            continue
        cut, acc = 0, 0.0
        for i, share in enumerate(shares):
            if share <= 0:
                continue
            acc += share
            end = max(cut, snap_cut(text, round(acc * len(text)), options.split_snap_chars))
            texts[i].append(text[cut:end])
            cut = end
        if cut < len(text):
            texts[max(i for i, s in enumerate(shares) if s > 0)].append(text[cut:])
    return tuple(tuple(t) for t in texts), tuple(covered)


_SENTENCE_ENDS = frozenset("。？！.?!")
_CLAUSE_COST = 1.5  # a cut after a comma counts as this many characters further than a full stop


def snap_cut(text: str, cut: int, reach: int) -> int:
    """Where to cut a timed text that spans two pieces: the clause end (just after a
    punctuation mark) nearest to the cut its time shares give, if one lies within `reach`
    characters, a full stop or question mark preferred to a comma (a turn ends a sentence more
    often than a clause). A share of time is a rough guide to a share of characters, and a cut
    inside a clause hands its first words to the other voice or turn (你听|我说, 对|吗？): a
    prompted Whisper writes longer timed texts, which cross pieces more often."""

    def cost(i: int) -> tuple[float, int]:
        return abs(i - cut) + (0.0 if text[i - 1] in _SENTENCE_ENDS else _CLAUSE_COST), i

    ends = [
        i
        for i in range(max(1, cut - reach), min(len(text), cut + reach) + 1)
        if text[i - 1] in CLAUSE_ENDS
    ]
    return min(ends, key=cost) if ends else cut


def speech_after(window: Window, t: float) -> float:
    """Seconds of the window's speech that lie after `t`."""
    return sum(max(0.0, b - max(a, t)) for a, b in (p.speech for p in window.pieces))
