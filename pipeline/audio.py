"""Decode a call recording into per-speaker float32 channels at 16 kHz.

Whisper and silero-vad both want 16 kHz mono float32; pitch and loudness are measured on
the same arrays so every figure refers to the same samples.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from pipeline.hashing import file_sha256
from pipeline.records import CallAudio, ChannelLayout

SAMPLE_RATE = 16_000
MIN_DURATION_S = 0.5


class AudioError(ValueError):
    """The recording cannot be used; the message says why."""


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples as float32 (frames, channels) and the file's sample rate."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        # libsndfile cannot read it; librosa/audioread may (odd mp3s) before we give up.
        try:
            mono_or_multi, sr = librosa.load(str(path), sr=None, mono=False)
        except Exception as e2:  # audioread raises many unrelated types
            raise AudioError(f"unreadable audio ({type(e).__name__}: {e}; {e2})") from e2
        data = np.atleast_2d(mono_or_multi).T.astype(np.float32)
    if data.size == 0:
        raise AudioError("audio file holds no samples")
    if not np.isfinite(data).all():
        raise AudioError("audio holds NaN or infinite samples")
    return data, int(sr)


def to_16k(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == SAMPLE_RATE:
        return np.ascontiguousarray(x, dtype=np.float32)
    return librosa.resample(x, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq").astype(
        np.float32
    )


def load_call(path: str | Path, layout: ChannelLayout | None = None) -> CallAudio:
    """Load a call; stereo defaults to agent on the left channel (docs/CONTRACTS.md, "Input")."""
    data, sr = read_audio(path)
    frames, n_channels = data.shape
    duration = frames / sr
    if duration < MIN_DURATION_S:
        raise AudioError(f"recording too short ({duration:.2f} s)")
    if n_channels > 2:
        raise AudioError(f"{n_channels} channels: expected mono or stereo")
    if layout is None:
        layout = "agent_left" if n_channels == 2 else "mono"
    if layout != "mono" and n_channels != 2:
        raise AudioError(f"manifest says channels={layout} but the file is mono")

    if layout == "mono":
        tracks: tuple[np.ndarray, ...] = (to_16k(data.mean(axis=1), sr),)
    else:
        left, right = to_16k(data[:, 0], sr), to_16k(data[:, 1], sr)
        tracks = (left, right) if layout == "agent_left" else (right, left)
    return CallAudio(
        sr=SAMPLE_RATE,
        duration_s=duration,
        source_sr=sr,
        n_channels=n_channels,
        layout=layout,
        sha256=file_sha256(path),
        tracks=tracks,
    )
