"""Packing each speaker's speech into Whisper windows, and mapping timed text back onto it.

Whisper's encoder always looks at 30 s, so decoding each short turn alone would spend most of
the encoder on padding. Instead each speaker's consecutive segments are concatenated, in order,
into windows of up to 30 s with a short silence between them; Whisper's timestamped text is then
given back to the segments it overlaps. `pipeline/transcribe.py` decodes the windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from whisper.tokenizer import Tokenizer

from pipeline.audio import SAMPLE_RATE
from pipeline.config import AsrOptions
from pipeline.records import CallAudio, Segment
from pipeline.text import is_hallucination

TimedText = tuple[float, float, str]  # (start_s, end_s) within a window, and the text


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


def pack_windows(
    call_id: str, audio: CallAudio, segments: list[Segment], options: AsrOptions
) -> list[Window]:
    """Concatenate each speaker's segments, in order, into windows of at most `window_s`."""
    windows: list[Window] = []
    gap = np.zeros(int(options.gap_s * SAMPLE_RATE), dtype=np.float32)
    for speaker in ("agent", "customer"):
        own = [s for s in segments if s.speaker == speaker]
        heard = segments if audio.is_mono else own
        clips: list[np.ndarray] = []
        pieces: list[Piece] = []
        used = 0.0
        for seg in own:
            lead = onset_lead(seg, heard, options.onset_s)
            clip = audio.clip(speaker, seg.start_s - lead, seg.end_s)
            clip = clip[: int(options.window_s * SAMPLE_RATE)]
            length = len(clip) / SAMPLE_RATE
            if pieces and used + options.gap_s + length > options.window_s:
                windows.append(Window(call_id, np.concatenate(clips), tuple(pieces)))
                clips, pieces, used = [], [], 0.0
            if pieces:
                clips.append(gap)
                used += options.gap_s
            pieces.append(Piece(seg, used, lead))
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
        cut = 0
        for i, share in enumerate(shares):
            if share <= 0:
                continue
            n = round(share * len(text))
            texts[i].append(text[cut : cut + n])
            cut += n
        if cut < len(text):
            texts[max(i for i, s in enumerate(shares) if s > 0)].append(text[cut:])
    return tuple(tuple(t) for t in texts), tuple(covered)


def speech_after(window: Window, t: float) -> float:
    """Seconds of the window's speech that lie after `t`."""
    return sum(max(0.0, b - max(a, t)) for a, b in (p.speech for p in window.pieces))
