"""Speech segments -> utterances with text, using openai-whisper.

Whisper's encoder always looks at 30 s, so decoding each short turn alone would spend most of
the encoder on padding. Instead each speaker's consecutive segments are packed into windows of
up to 30 s (with a short silence between them), windows are decoded in batches with timestamps,
and the timed text is mapped back onto the VAD segments it overlaps. Each window is decoded
independently (no conditioning on previous text), which removes Whisper's repetition loops.
Windows from many calls can share a batch: `transcribe_calls` takes any number of calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import whisper
from whisper.tokenizer import get_tokenizer

from pipeline.audio import SAMPLE_RATE
from pipeline.config import load_thresholds
from pipeline.records import CallAudio, Segment, Utterance
from pipeline.text import is_hallucination, normalise

WINDOW_S = 30.0
GAP_S = 0.6  # silence put between packed segments: long enough for Whisper to start a new segment
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass
class Piece:
    """One VAD segment placed in a window: source times and where it sits in the window."""

    segment: Segment
    offset_s: float  # start within the window
    texts: list[str] = field(default_factory=list)
    covered_s: float = 0.0  # seconds of this piece under decoded, timestamped text

    @property
    def duration_s(self) -> float:
        return self.segment.end_s - self.segment.start_s


@dataclass
class Window:
    call_id: str
    audio: np.ndarray
    pieces: list[Piece]
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0


def pack_windows(call_id: str, audio: CallAudio, segments: list[Segment]) -> list[Window]:
    """Concatenate each speaker's segments, in order, into windows of at most 30 s."""
    windows: list[Window] = []
    for speaker in ("agent", "customer"):
        channel = audio.channel(speaker) if audio.layout != "mono" else audio.mono
        assert channel is not None
        gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
        clips: list[np.ndarray] = []
        pieces: list[Piece] = []
        used = 0.0
        for seg in (s for s in segments if s.speaker == speaker):
            clip = channel[int(seg.start_s * SAMPLE_RATE) : int(seg.end_s * SAMPLE_RATE)]
            length = len(clip) / SAMPLE_RATE
            if pieces and used + GAP_S + length > WINDOW_S:
                windows.append(Window(call_id, np.concatenate(clips), pieces))
                clips, pieces, used = [], [], 0.0
            if pieces:
                clips.append(gap)
                used += GAP_S
            pieces.append(Piece(seg, used))
            clips.append(clip[: int(WINDOW_S * SAMPLE_RATE)])
            used += min(length, WINDOW_S)
        if pieces:
            windows.append(Window(call_id, np.concatenate(clips), pieces))
    return windows


def _timed_segments(tokens: list[int], tokenizer, end_s: float) -> list[tuple[float, float, str]]:
    """Split a decoded token list at Whisper's timestamp tokens into (start, end, text)."""
    out: list[tuple[float, float, str]] = []
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


def _assign(window: Window, timed: list[tuple[float, float, str]]) -> None:
    """Give each timed text to the piece(s) it overlaps; split it by overlap when it spans two."""
    spans = [(p.offset_s, p.offset_s + p.segment.end_s - p.segment.start_s) for p in window.pieces]
    for start, end, text in timed:
        text = text.strip()
        if not text or is_hallucination(text):
            continue
        overlaps = [max(0.0, min(end, b) - max(start, a)) for a, b in spans]
        for piece, o in zip(window.pieces, overlaps, strict=True):
            piece.covered_s += o
        total = sum(overlaps)
        if total <= 0:  # timestamp outside every piece: give it to the nearest
            mid = (start + end) / 2
            nearest = min(range(len(spans)), key=lambda i: min(abs(mid - spans[i][0]), abs(mid - spans[i][1])))
            window.pieces[nearest].texts.append(text)
            continue
        shares = [o / total for o in overlaps]
        if max(shares) > 0.85:
            window.pieces[int(np.argmax(shares))].texts.append(text)
            continue
        cut = 0
        for i, share in enumerate(shares):
            if share <= 0:
                continue
            n = round(share * len(text))
            window.pieces[i].texts.append(text[cut : cut + n])
            cut += n
        if cut < len(text):
            window.pieces[max(i for i, s in enumerate(shares) if s > 0)].texts.append(text[cut:])


def _decode(model: whisper.Whisper, windows: list[Window], temperature: float) -> list:
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


def decode_windows(model: whisper.Whisper, windows: list[Window], batch_size: int = 8) -> None:
    """Decode packed windows, then decode alone every piece the window pass left uncovered.

    Whisper sometimes ends a packed window early (an end-of-text after the first pieces), which
    would silently drop the later turns; a piece under half covered by timestamped text is
    decoded again on its own, and that text replaces the partial one.
    """
    _decode_pass(model, windows, batch_size)
    retry = [(w, p) for w in windows for p in w.pieces if p.covered_s < 0.5 * p.duration_s]
    singles = []
    for w, p in retry:
        start = int(p.offset_s * SAMPLE_RATE)
        clip = w.audio[start : start + int(p.duration_s * SAMPLE_RATE)]
        singles.append(Window(w.call_id, clip, [Piece(p.segment, 0.0)]))
    _decode_pass(model, singles, batch_size)
    for (_, piece), single in zip(retry, singles, strict=True):
        if single.pieces[0].texts:
            piece.texts = single.pieces[0].texts


def _decode_pass(model: whisper.Whisper, windows: list[Window], batch_size: int) -> None:
    """Decode windows in batches; re-decode a window at rising temperature when it loops."""
    if not windows:
        return
    cfg = load_thresholds()["asr"]
    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages,
                              language="zh", task="transcribe")
    for i in range(0, len(windows), batch_size):
        batch = windows[i : i + batch_size]
        results = _decode(model, batch, 0.0)
        for window, result in zip(batch, results, strict=True):
            for temperature in FALLBACK_TEMPERATURES:
                if result.compression_ratio <= cfg["compression_ratio_max"]:
                    break
                result = _decode(model, [window], temperature)[0]
            window.avg_logprob = result.avg_logprob
            window.no_speech_prob = result.no_speech_prob
            window.compression_ratio = result.compression_ratio
            # Whisper's own silence rule: likely no speech and not confidently decoded.
            if result.no_speech_prob > cfg["no_speech_max"] and result.avg_logprob < cfg["logprob_min"]:
                continue
            _assign(window, _timed_segments(result.tokens, tokenizer, len(window.audio) / SAMPLE_RATE))


def utterances_from_windows(call_id: str, windows: list[Window]) -> list[Utterance]:
    """One utterance per VAD segment that got text, ordered by start time."""
    rows: list[Utterance] = []
    for window in windows:
        if window.call_id != call_id:
            continue
        for piece in window.pieces:
            text = normalise("".join(piece.texts))
            if not text:
                continue  # VAD fired but Whisper heard no words: no utterance is invented
            seg = piece.segment
            rows.append(Utterance(call_id, 0, seg.speaker, round(seg.start_s, 3), round(seg.end_s, 3),
                                  text, window.avg_logprob, window.no_speech_prob,
                                  window.compression_ratio))
    rows.sort(key=lambda u: (u.start_s, u.speaker))
    for i, u in enumerate(rows):
        u.utterance_id = i
    return rows


def transcribe_calls(
    model: whisper.Whisper,
    calls: list[tuple[str, CallAudio, list[Segment]]],
    batch_size: int = 8,
) -> dict[str, list[Utterance]]:
    """Transcribe several calls' segments together, batching windows across calls."""
    windows = [w for call_id, audio, segs in calls for w in pack_windows(call_id, audio, segs)]
    decode_windows(model, windows, batch_size)
    return {call_id: utterances_from_windows(call_id, windows) for call_id, _, _ in calls}
