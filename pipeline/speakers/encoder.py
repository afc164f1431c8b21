"""The GE2E speaker encoder (weights from the resemblyzer wheel) and window embeddings."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn

from pipeline.speakers.options import (
    EMBED_DIM,
    ENCODER_SR,
    MEL_HOP_S,
    CallWindows,
    SpeakerOptions,
    unit,
)
from pipeline.threads import single_thread

# ----------------------------------------------------------------------------- encoder


class SpeakerEncoder(nn.Module):
    """GE2E speaker encoder (3-layer LSTM over 40 mel bands, 256-d output), resemblyzer's model.

    Same network and weights as resemblyzer.VoiceEncoder; variable-length windows are packed so
    a short span is embedded from its own frames only.
    """

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBED_DIM)
        state = torch.load(weights or bundled_weights(), map_location="cpu", weights_only=True)
        self.load_state_dict(state["model_state"], strict=False)  # drops GE2E's similarity scale
        self.eval()

    def forward(self, mels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(
            mels, lengths, batch_first=True, enforce_sorted=False
        )
        _, (hidden, _) = self.lstm(packed)
        e = torch.relu(self.linear(hidden[-1]))
        return e / torch.clamp(torch.norm(e, dim=1, keepdim=True), min=1e-8)


def bundled_weights() -> Path:
    """resemblyzer/pretrained.pt, found without importing resemblyzer (which needs webrtcvad)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "speaker encoder weights not found: pip install --no-deps resemblyzer==0.1.4"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise RuntimeError(f"speaker encoder weights missing: {path}")
    return path


def load_encoder(weights: str | Path | None = None) -> SpeakerEncoder:
    """Load once per process (about 0.1 s) and pass it to `embed_call` / `embed_speech`."""
    return SpeakerEncoder(weights)


def _mel(x: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram at 10 ms hop, as GE2E was trained on."""
    return (
        librosa.feature.melspectrogram(y=x, sr=ENCODER_SR, n_fft=400, hop_length=160, n_mels=40)
        .astype(np.float32)
        .T
    )


def _to_encoder_rate(x: np.ndarray, sr: int) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if sr != ENCODER_SR:
        x = librosa.resample(x, orig_sr=sr, target_sr=ENCODER_SR, res_type="soxr_hq")
    return x.astype(np.float32)


def _window_bounds(
    spans: Sequence[tuple[float, float]], options: SpeakerOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    starts: list[float] = []
    ends: list[float] = []
    index: list[int] = []
    for k, (a, b) in enumerate(spans):
        length = b - a
        if length < options.min_window_s:
            continue
        if length <= options.window_s:
            starts.append(a)
            ends.append(b)
            index.append(k)
            continue
        n = int(np.ceil((length - options.window_s) / options.hop_s)) + 1
        for s in np.linspace(a, b - options.window_s, n):
            starts.append(float(s))
            ends.append(float(s) + options.window_s)
            index.append(k)
    return np.array(starts), np.array(ends), np.array(index, dtype=int)


def _embed_windows(
    encoder: SpeakerEncoder,
    mel: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    options: SpeakerOptions,
) -> np.ndarray:
    if len(starts) == 0:
        return np.zeros((0, EMBED_DIM), np.float32)
    target = 10 ** (options.level_dbfs / 10)
    out = []
    for b0 in range(0, len(starts), options.batch_windows):
        chunk = []
        for a, b in zip(
            starts[b0 : b0 + options.batch_windows],
            ends[b0 : b0 + options.batch_windows],
            strict=True,
        ):
            m = mel[int(round(a / MEL_HOP_S)) : int(round(b / MEL_HOP_S))]
            if options.level_per == "window":  # loudness takes no part in the voice at all
                power = float(m.sum(axis=1).mean()) / 400 if len(m) else 0.0
                if power > 0:
                    m = m * (target / power)
            chunk.append(m)
        lengths = torch.tensor([max(len(m), 1) for m in chunk])
        batch = torch.zeros((len(chunk), int(lengths.max()), 40))
        for i, m in enumerate(chunk):
            batch[i, : len(m)] = torch.from_numpy(m)
        with torch.inference_mode(), single_thread():
            out.append(encoder(batch, lengths).numpy())
    return np.concatenate(out).astype(np.float32)


def embed_call(
    x: np.ndarray,
    sr: int,
    spans: Sequence[tuple[float, float]],
    encoder: SpeakerEncoder,
    options: SpeakerOptions,
    call_id: str = "",
) -> CallWindows:
    """Stage A, part 1: GE2E embeddings of windows over the VAD speech spans of one channel."""
    y = _to_encoder_rate(x, sr)
    duration = len(y) / ENCODER_SR
    spans = tuple((max(0.0, float(a)), min(duration, float(b))) for a, b in spans)
    if options.level_per == "call":  # one gain for the call: recording level differs between
        # calls and channels, but the two sides' relative loudness within the call is kept
        speech = np.concatenate(
            [y[int(a * ENCODER_SR) : int(b * ENCODER_SR)] for a, b in spans] or [y]
        )
        rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2))) if speech.size else 0.0
        if rms > 0:
            y = y * np.float32(10 ** (options.level_dbfs / 20) / rms)
    starts, ends, index = _window_bounds(spans, options)
    emb = _embed_windows(encoder, _mel(y), starts, ends, options)
    return CallWindows(call_id, duration, spans, starts, ends, index, emb)


def embed_speech(
    x: np.ndarray,
    sr: int,
    spans: Sequence[tuple[float, float]],
    encoder: SpeakerEncoder,
    options: SpeakerOptions,
) -> np.ndarray | None:
    """Mean embedding of one speaker's speech (e.g. a stereo call's agent channel); None if none."""
    w = embed_call(x, sr, spans, encoder, options)
    return unit(w.embeddings.mean(axis=0)) if len(w.embeddings) else None
