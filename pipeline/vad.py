"""Find speech on each channel with silero-vad, before any decoding.

VAD first means Whisper never sees long silences (where it invents text) and decodes only
speech, one utterance per segment. Silero runs on 8 kHz audio: call audio carries nothing above
4 kHz, and 8 kHz halves the number of 32 ms windows the model evaluates.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

from pipeline.audio import SAMPLE_RATE
from pipeline.config import DiarizeOptions, VadOptions
from pipeline.diarize import attribute_mono
from pipeline.records import CallAudio, Segment, Speaker
from pipeline.threads import single_thread

VAD_SR = 8_000

# Importing silero_vad calls torch.set_num_threads(1) for the whole process, which would halve
# Whisper's speed; keep the process-wide count and go single-threaded only around the VAD loop:
# its per-window ops are tiny, and with several threads they spend most of their time waiting
# (measured: 1.3 s on one thread vs 8 s on two for a 73 s channel on a loaded 2-core machine).
_threads = torch.get_num_threads()
from silero_vad import get_speech_timestamps, load_silero_vad  # noqa: E402  (weights ship inside)

torch.set_num_threads(_threads)


def load_vad_model() -> torch.nn.Module:
    """silero-vad's JIT model; its weights ship inside the package (no download)."""
    return load_silero_vad()


def speech_spans(
    x: np.ndarray, options: VadOptions, model: torch.nn.Module, sr: int = SAMPLE_RATE
) -> list[tuple[float, float]]:
    """(start_s, end_s) of speech in a mono signal, long stretches split for Whisper."""
    if x.size == 0:
        return []
    x8 = (
        librosa.resample(x, orig_sr=sr, target_sr=VAD_SR, res_type="soxr_qq") if sr != VAD_SR else x
    )
    with single_thread():
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
    audio: CallAudio, options: VadOptions, model: torch.nn.Module, diarize: DiarizeOptions
) -> list[Segment]:
    """Speech segments of a call with their speaker, sorted by start time.

    Stereo: each channel on its own, so the speaker is known. Mono: segments of the single
    channel, attributed by pipeline.diarize.
    """
    if audio.is_mono:
        spans = speech_spans(audio.samples("agent"), options, model, audio.sr)
        return attribute_mono(audio, spans, diarize)
    segments: list[Segment] = []
    speaker: Speaker
    for speaker in ("agent", "customer"):
        spans = speech_spans(audio.samples(speaker), options, model, audio.sr)
        segments.extend(Segment(s, e, speaker) for s, e in spans)
    return sorted(segments, key=lambda s: (s.start_s, s.speaker))
