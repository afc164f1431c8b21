"""Find speech on each channel with silero-vad, before any decoding.

VAD first means Whisper never sees long silences (where it invents text) and decodes only
speech, one utterance per segment. Silero runs on 8 kHz audio: call audio carries nothing above
4 kHz, and 8 kHz halves the number of 32 ms windows the model evaluates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import librosa
import numpy as np
import torch

from pipeline.audio import SAMPLE_RATE
from pipeline.config import SpeakerOptions, VadOptions
from pipeline.records import CallAudio, Segment, Speaker

if TYPE_CHECKING:
    from pipeline.speakers import SpeakerEncoder

VAD_SR = 8_000

# Importing silero_vad calls torch.set_num_threads(1) for the whole process, which would halve
# Whisper's speed: keep the process-wide count. The ONNX model runs on onnxruntime's own single
# thread, and the loop's torch ops are too small to use more than one (measured: 0.21 s on one
# torch thread or two for a 58 s channel), so the VAD never touches the process-wide count.
_threads = torch.get_num_threads()
from silero_vad import get_speech_timestamps, load_silero_vad  # noqa: E402  (weights ship inside)

torch.set_num_threads(_threads)


def load_vad_model() -> torch.nn.Module:
    """silero-vad's ONNX model, run by onnxruntime on one thread of its own; its weights ship
    inside the package (no download).

    ONNX rather than the JIT model: same speech stamps, about 1.7x faster (0.30 s vs 0.52 s on
    a 58 s channel), and it leaves torch's process-wide thread count alone, so Whisper keeps
    every core while calls are prepared concurrently. The model keeps state between windows:
    give each thread its own.
    """
    return load_silero_vad(onnx=True)


def speech_spans(
    x: np.ndarray, options: VadOptions, model: torch.nn.Module, sr: int = SAMPLE_RATE
) -> list[tuple[float, float]]:
    """(start_s, end_s) of speech in a mono signal, long stretches split for Whisper."""
    if x.size == 0:
        return []
    x8 = (
        librosa.resample(x, orig_sr=sr, target_sr=VAD_SR, res_type="soxr_qq") if sr != VAD_SR else x
    )
    spans = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(x8, dtype=np.float32)),
        model,
        threshold=options.threshold,
        sampling_rate=VAD_SR,
        min_speech_duration_ms=int(options.min_speech_s * 1000),
        min_silence_duration_ms=int(options.min_silence_s * 1000),
        speech_pad_ms=int(options.speech_pad_s * 1000),
        max_speech_duration_s=options.max_utterance_s,
        return_seconds=False,
    )
    return [(s["start"] / VAD_SR, s["end"] / VAD_SR) for s in spans]


def find_segments(
    audio: CallAudio,
    options: VadOptions,
    model: torch.nn.Module,
    speakers: SpeakerOptions | None = None,
    encoder: SpeakerEncoder | None = None,
) -> list[Segment]:
    """Speech segments of a call with their speaker, sorted by start time.

    Stereo: each channel on its own, so the speaker is known (`speakers`, `encoder` unused).
    Mono: the chunked flow calls `speech_spans` on the mix and pipeline.mono per chunk (the
    agent's voice print and other calls decide). Here a mono call is attributed on its own,
    as a chunk of one call without a print (the voice that talks more is the agent), for
    callers that take one call at a time; it needs `speakers` ([speakers] settings) and loads
    the speaker encoder when `encoder` (pipeline.mono.load_encoder()) is not given.
    """
    if audio.is_mono:
        if speakers is None:
            raise ValueError(
                "a mono call needs the [speakers] settings: pass config.speakers, or call "
                "speech_spans on the mix and pipeline.mono (split_mono, attribute_chunk)"
            )
        from pipeline import mono  # the speaker encoder's modules, only where mono calls are

        spans = speech_spans(audio.samples("agent"), options, model, audio.sr)
        voices = mono.split_mono(audio, spans, encoder or mono.load_encoder(), speakers)
        segments, _, _ = mono.attribute_chunk([("call", "agent", voices)], {}, {}, speakers)
        return segments["call"]
    segments: list[Segment] = []
    speaker: Speaker
    for speaker in ("agent", "customer"):
        spans = speech_spans(audio.samples(speaker), options, model, audio.sr)
        segments.extend(Segment(s, e, speaker) for s, e in spans)
    return sorted(segments, key=lambda s: (s.start_s, s.speaker))
