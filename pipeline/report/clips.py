"""Cutting agent utterances out of recordings and encoding them for a data: URI.

The report embeds every clip so it plays from a file opened straight from disk. A clip that
cannot be cut says why instead; the rest of the page is unaffected.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.audio import SAMPLE_RATE, load_call
from pipeline.report import fmt

CLIP_PAD_S = 0.3  # heard before and after the utterance, so its first syllable is not cut
LAYOUTS = ("agent_left", "agent_right", "mono")

# call_id -> (folder, path, channels, audio_sha256), None for an unknown call
Locate = Callable[[str], tuple | None]


@dataclass(frozen=True)
class Clip:
    start_s: float
    end_s: float
    src: str | None = None  # data: URI when the clip could be cut
    unavailable: str | None = None  # why not, shown instead of the player
    warning: str | None = None

    @property
    def span(self) -> str:
        length = self.end_s - self.start_s
        return f"{fmt.clock(self.start_s)}–{fmt.clock(self.end_s)} ({length:.1f} s)"


def encode_clip(samples: np.ndarray, sr: int, codec: str | None = None) -> tuple[str, bytes]:
    """(mime type, file bytes). MP3 keeps the page small when libsndfile can write it
    (libsndfile >= 1.1); 16-bit WAV otherwise."""
    codec = codec or ("MP3" if "MP3" in sf.available_formats() else "WAV")
    buf = io.BytesIO()
    if codec == "MP3":
        try:
            sf.write(buf, samples, sr, format="MP3")
            return "audio/mpeg", buf.getvalue()
        except (sf.LibsndfileError, RuntimeError, ValueError):
            buf = io.BytesIO()  # encoder missing at run time: fall back to WAV
    sf.write(buf, samples, sr, format="WAV", subtype="PCM_16")
    return "audio/wav", buf.getvalue()


@dataclass(frozen=True)
class Recording:
    samples: np.ndarray | None = None  # the agent's channel (or the mono mix) at SAMPLE_RATE
    error: str | None = None
    warning: str | None = None


def load_recording(location: tuple | None) -> Recording:
    """The agent's audio of a call from its (folder, path, channels, audio_sha256)."""
    if location is None or fmt.is_missing(location[1]):
        return Recording(error="call has no recording path in the database")
    folder, rel, channels, sha = location
    path = Path(folder) / rel if not fmt.is_missing(folder) else Path(rel)
    if not path.is_file():
        return Recording(error=f"file not found: {path}")
    try:
        audio = load_call(path, channels if channels in LAYOUTS else None)
    except (ValueError, OSError, RuntimeError) as e:  # AudioError is a ValueError
        return Recording(error=f"{type(e).__name__}: {e}")
    warning = None
    if not fmt.is_missing(sha) and audio.sha256 != sha:
        warning = "recording changed since it was processed; clip times may be off"
    return Recording(samples=audio.samples("agent"), warning=warning)


@dataclass(frozen=True)
class ClipCutter:
    """Cuts agent utterances out of recordings; each recording is decoded once."""

    locate: Locate
    cache: dict[str, Recording] = field(default_factory=dict)

    def recording(self, call_id: str) -> Recording:
        if call_id not in self.cache:
            self.cache[call_id] = load_recording(self.locate(call_id))
        return self.cache[call_id]

    def clip(self, call_id: str, start_s: float, end_s: float) -> Clip:
        if fmt.is_missing(start_s) or fmt.is_missing(end_s) or end_s <= start_s:
            return Clip(start_s, end_s, unavailable="no clip times")
        rec = self.recording(call_id)
        if rec.samples is None:
            return Clip(start_s, end_s, unavailable=rec.error)
        a = max(int((start_s - CLIP_PAD_S) * SAMPLE_RATE), 0)
        b = min(int(round((end_s + CLIP_PAD_S) * SAMPLE_RATE)), len(rec.samples))
        if b - a < SAMPLE_RATE // 20:
            seconds = len(rec.samples) / SAMPLE_RATE
            return Clip(
                start_s,
                end_s,
                unavailable=f"clip lies outside the recording ({seconds:.1f} s long)",
            )
        mime, data = encode_clip(rec.samples[a:b], SAMPLE_RATE)
        src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        return Clip(start_s, end_s, src=src, warning=rec.warning)
