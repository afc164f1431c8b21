"""Speech segments -> utterances with text, using openai-whisper.

Whisper's encoder always looks at 30 s, so decoding each short turn alone would spend most of
the encoder on padding. Instead each speaker's consecutive segments, each with a little of the
recording around it, are packed into windows of up to 30 s (with a short silence between them),
windows are decoded in batches with timestamps, and the timed text is mapped back onto the VAD
segments it overlaps. Each window is decoded independently (no conditioning on previous text),
which removes Whisper's repetition loops. Where Whisper stopped early, the window is decoded again
from its last timestamp, as Whisper's own `transcribe` seeks. Windows from many calls can share a
batch: `transcribe_calls` takes any number of calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import whisper
from whisper.tokenizer import Tokenizer, get_tokenizer

from pipeline.asr.decode import AsrRuntime, decode_batch
from pipeline.audio import SAMPLE_RATE
from pipeline.config import AsrOptions
from pipeline.records import CallAudio, Coverage, Segment, Transcript, Utterance
from pipeline.redact import RedactOptions, redact_utterances
from pipeline.rows import PiiSpan
from pipeline.text import is_hallucination, simplify

TimedText = tuple[float, float, str]  # (start_s, end_s) within a window, and the text
SEEKS = 3  # most re-decodes of one window from where its text stopped


@dataclass(frozen=True)
class Piece:
    """One VAD segment placed in a window: its source times and where it sits in the window.

    The clip carries `lead_s` / `trail_s` of the recording around the speech, so Whisper hears
    a word's onset the way it was trained to (not cut at the first sample of speech).
    """

    segment: Segment
    offset_s: float  # where the clip (lead included) starts within the window
    lead_s: float = 0.0
    trail_s: float = 0.0

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
        return self.offset_s, self.speech[1] + self.trail_s

    def shifted(self, by_s: float) -> Piece:
        return Piece(self.segment, self.offset_s - by_s, self.lead_s, self.trail_s)


@dataclass(frozen=True)
class Window:
    call_id: str
    audio: np.ndarray
    pieces: tuple[Piece, ...]


@dataclass(frozen=True)
class WindowText:
    """What decoding one window gave: text and timed coverage per piece, and Whisper's scores."""

    texts: tuple[tuple[str, ...], ...]  # per piece
    covered_s: tuple[float, ...]  # per piece: seconds of its speech under timestamped text
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    text_end_s: float = 0.0  # where the last timed text ended in the window (0: no text)


def context_around(
    seg: Segment, heard: list[Segment], duration_s: float, pad_s: float
) -> tuple[float, float]:
    """Recording to keep before and after a segment: up to `pad_s`, never more than half the
    pause to the nearest other segment heard on the same track (a mono call's other speaker
    included), so no word is heard in two clips."""
    before = max((s.end_s for s in heard if s is not seg and s.end_s <= seg.start_s), default=None)
    after = min((s.start_s for s in heard if s is not seg and s.start_s >= seg.end_s), default=None)
    lead = seg.start_s if before is None else (seg.start_s - before) / 2
    trail = duration_s - seg.end_s if after is None else (after - seg.end_s) / 2
    if any(s is not seg and s.start_s < seg.end_s and s.end_s > seg.start_s for s in heard):
        lead = trail = 0.0  # overlapping speech (a mono mix): its edges are someone else's words
    return max(0.0, min(pad_s, lead)), max(0.0, min(pad_s, trail))


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
            lead, trail = context_around(seg, heard, audio.duration_s, options.context_s)
            clip = audio.clip(speaker, seg.start_s - lead, seg.end_s + trail)
            clip = clip[: int(options.window_s * SAMPLE_RATE)]
            length = len(clip) / SAMPLE_RATE
            if pieces and used + options.gap_s + length > options.window_s:
                windows.append(Window(call_id, np.concatenate(clips), tuple(pieces)))
                clips, pieces, used = [], [], 0.0
            if pieces:
                clips.append(gap)
                used += options.gap_s
            pieces.append(Piece(seg, used, lead, trail))
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


def _decode(model: whisper.Whisper | AsrRuntime, windows: list[Window], temperature: float) -> list:
    """Decode windows together: with the runtime's compute mode and fast greedy decoder
    (pipeline.asr.decode) when given an AsrRuntime, else whisper.decode as is."""
    if isinstance(model, AsrRuntime):
        return decode_batch(model, [w.audio for w in windows], temperature)
    mels = torch.stack(
        [
            whisper.log_mel_spectrogram(
                whisper.pad_or_trim(torch.from_numpy(w.audio)), n_mels=model.dims.n_mels
            )
            for w in windows
        ]
    ).to(model.device)
    options = whisper.DecodingOptions(
        task="transcribe",
        language="zh",
        temperature=temperature,
        best_of=5 if temperature > 0 else None,
        without_timestamps=False,
        fp16=model.device.type == "cuda",
    )
    with torch.inference_mode():
        return whisper.decode(model, mels, options)


def decode_pass(
    model: whisper.Whisper, windows: list[Window], options: AsrOptions
) -> list[WindowText]:
    """Decode windows in batches; re-decode a window at rising temperature when it loops."""
    if not windows:
        return []
    tokenizer = get_tokenizer(
        model.is_multilingual, num_languages=model.num_languages, language="zh", task="transcribe"
    )
    out: list[WindowText] = []
    for i in range(0, len(windows), options.batch_size):
        batch = windows[i : i + options.batch_size]
        results = _decode(model, batch, 0.0)
        for window, result in zip(batch, results, strict=True):
            for temperature in options.fallback_temperatures:
                if result.compression_ratio <= options.compression_ratio_max:
                    break
                result = _decode(model, [window], temperature)[0]
            texts: tuple[tuple[str, ...], ...] = tuple(() for _ in window.pieces)
            covered = tuple(0.0 for _ in window.pieces)
            end_s = 0.0
            # Whisper's own silence rule: likely no speech and not confidently decoded.
            silent = (
                result.no_speech_prob > options.no_speech_max
                and result.avg_logprob < options.logprob_min
            )
            if not silent:
                timed = timed_segments(result.tokens, tokenizer, len(window.audio) / SAMPLE_RATE)
                texts, covered = assign_texts(window.pieces, timed, options)
                end_s = max((end for _, end, _ in timed), default=0.0)
            out.append(
                WindowText(
                    texts,
                    covered,
                    result.avg_logprob,
                    result.no_speech_prob,
                    result.compression_ratio,
                    end_s,
                )
            )
    return out


def speech_after(window: Window, t: float) -> float:
    """Seconds of the window's speech that lie after `t`."""
    return sum(max(0.0, b - max(a, t)) for a, b in (p.speech for p in window.pieces))


def seek(
    model: whisper.Whisper, windows: list[Window], first: list[WindowText], options: AsrOptions
) -> tuple[list[list[tuple[str, ...]]], list[list[float]]]:
    """Whisper's seek, for packed windows: where decoding stopped with `seek_min_s` or more of
    speech still ahead (an end-of-text before the window's last turns), decode again from the
    last timestamp, and add that text to the pieces it falls on. Up to `SEEKS` times."""
    texts = [list(res.texts) for res in first]
    covered = [list(res.covered_s) for res in first]
    todo = [(k, w, res.text_end_s) for k, (w, res) in enumerate(zip(windows, first, strict=True))]
    for _ in range(SEEKS):
        tails = [
            (
                k,
                Window(
                    w.call_id,
                    w.audio[int(end * SAMPLE_RATE) :],
                    tuple(p.shifted(end) for p in w.pieces),
                ),
            )
            for k, w, end in todo
            if end > 0 and speech_after(w, end) >= options.seek_min_s
        ]
        if not tails:
            break
        todo = []
        for (k, tail), res in zip(
            tails, decode_pass(model, [t for _, t in tails], options), strict=True
        ):
            for j, (more, cov) in enumerate(zip(res.texts, res.covered_s, strict=True)):
                texts[k][j] += more
                covered[k][j] += cov
            todo.append((k, tail, res.text_end_s))
    return texts, covered


def decode_windows(
    model: whisper.Whisper, windows: list[Window], options: AsrOptions
) -> list[WindowText]:
    """Decode packed windows, seek past early stops, then decode alone every piece still left
    uncovered.

    Whisper sometimes ends a packed window early (an end-of-text after the first pieces), which
    would silently drop the later turns: the window is decoded again from where its text stopped
    (`seek`). A piece still less than `retry_coverage` covered by timestamped text is decoded
    again on its own, and that text replaces the partial one.
    """
    first = decode_pass(model, windows, options)
    texts, covered = seek(model, windows, first, options)
    retry = [
        (w, k, j)
        for k, w in enumerate(windows)
        for j, p in enumerate(w.pieces)
        if covered[k][j] < options.retry_coverage * p.duration_s
    ]
    singles = []
    for w, _, j in retry:
        p = w.pieces[j]
        a, b = p.span
        clip = w.audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
        singles.append(Window(w.call_id, clip, (p.shifted(a),)))
    for (_, k, j), single in zip(retry, decode_pass(model, singles, options), strict=True):
        if single.texts[0]:
            texts[k][j] = single.texts[0]
            covered[k][j] = single.covered_s[0]
    return [
        WindowText(tuple(t), tuple(c), res.avg_logprob, res.no_speech_prob, res.compression_ratio)
        for t, c, res in zip(texts, covered, first, strict=True)
    ]


def utterances_from_windows(
    call_id: str, windows: list[Window], decoded: list[WindowText], redaction: RedactOptions
) -> tuple[list[Utterance], list[PiiSpan]]:
    """One utterance per VAD segment that got text, ordered by start time, PII-masked; and the
    masked spans with their times, so the report can mute them in the audio."""
    rows: list[tuple[Segment, str, WindowText]] = []
    for window, result in zip(windows, decoded, strict=True):
        if window.call_id != call_id:
            continue
        for piece, parts in zip(window.pieces, result.texts, strict=True):
            text = simplify("".join(parts))
            if text:  # VAD fired but Whisper heard no words: no utterance is invented
                rows.append((piece.segment, text, result))
    rows.sort(key=lambda r: (round(r[0].start_s, 3), r[0].speaker))
    timed = [
        (seg.speaker, round(seg.start_s, 3), round(seg.end_s, 3), text) for seg, text, _ in rows
    ]
    redacted = redact_utterances(timed, redaction)  # a number read over a pause is seen whole
    spans = [
        PiiSpan(
            call_id,
            s.utterance_index,
            s.kind,
            s.start_char,
            s.end_char,
            round(s.start_s, 3),
            round(s.end_s, 3),
        )
        for r in redacted
        for s in r.spans
    ]
    return [
        Utterance(
            call_id,
            i,
            seg.speaker,
            round(seg.start_s, 3),
            round(seg.end_s, 3),
            red.text,
            res.avg_logprob,
            res.no_speech_prob,
            res.compression_ratio,
        )
        for i, ((seg, _, res), red) in enumerate(zip(rows, redacted, strict=True))
    ], spans


def speech_coverage(
    call_id: str, windows: list[Window], decoded: list[WindowText]
) -> dict[str, Coverage]:
    """Per speaker: VAD speech time, and how much of it lies under timestamped text we kept.

    The completeness audit: a transcript that covers little of the speech lost words (an early
    end-of-text, a dropped window); downstream figures on it would silently be wrong.
    """
    speech = {"agent": 0.0, "customer": 0.0}
    covered = {"agent": 0.0, "customer": 0.0}
    for window, result in zip(windows, decoded, strict=True):
        if window.call_id != call_id:
            continue
        for piece, parts, cov in zip(window.pieces, result.texts, result.covered_s, strict=True):
            speaker = piece.segment.speaker
            speech[speaker] += piece.duration_s
            if simplify("".join(parts)):  # text that survived is what the figures are built on
                covered[speaker] += min(cov, piece.duration_s)
    return {s: Coverage(round(speech[s], 3), round(covered[s], 3)) for s in speech}


def transcribe_calls(
    model: whisper.Whisper,
    calls: list[tuple[str, CallAudio, list[Segment]]],
    options: AsrOptions,
) -> dict[str, Transcript]:
    """Transcribe several calls' segments together, batching windows across calls."""
    windows = [
        w for call_id, audio, segs in calls for w in pack_windows(call_id, audio, segs, options)
    ]
    decoded = decode_windows(model, windows, options)
    out = {}
    for call_id, _, _ in calls:
        utterances, pii = utterances_from_windows(call_id, windows, decoded, options.redaction)
        out[call_id] = Transcript(utterances, speech_coverage(call_id, windows, decoded), pii)
    return out
