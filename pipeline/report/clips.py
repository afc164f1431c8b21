"""Cutting agent utterances out of recordings and encoding them for a data: URI.

The report embeds every clip so it plays from a file opened straight from disk. A clip that
cannot be cut says why instead; the rest of the page is unaffected. Each clip keeps a short
lead-in and tail (CLIP_PAD_S) so its first syllable is heard, and stretches of the call that
must not be heard (masked PII: `mutes`, call_id -> (start_s, end_s) ranges in call time) are
silenced before encoding, so no page ever carries them.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
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
# call_id -> the call's stretches to silence, (start_s, end_s) in call time
Mutes = Callable[[str], Sequence[tuple[float, float]]]


def no_mutes(call_id: str) -> Sequence[tuple[float, float]]:
    return ()


@dataclass(frozen=True)
class Clip:
    start_s: float
    end_s: float
    src: str | None = None  # data: URI when the clip could be cut
    unavailable: str | None = None  # why not, shown instead of the player
    warning: str | None = None
    clip_start_s: float = 0.0  # where the clip starts in the call (start_s minus the lead-in)
    muted: tuple[tuple[float, float], ...] = ()  # silenced stretches inside it, call time

    @property
    def lead_s(self) -> float:
        """Seconds of lead-in before the utterance: where the player seeks to hear it."""
        return max(self.start_s - self.clip_start_s, 0.0)

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


def silence(
    samples: np.ndarray, offset_s: float, ranges: Sequence[tuple[float, float]], sr: int
) -> tuple[tuple[float, float], ...]:
    """Zero the parts of `samples` (which start at `offset_s` in the call) that fall in
    `ranges`, in place; the ranges that overlapped, clipped to the samples, in call time."""
    end_s = offset_s + len(samples) / sr
    done = []
    for start, stop in sorted(ranges):
        lo, hi = max(float(start), offset_s), min(float(stop), end_s)
        if hi <= lo:
            continue
        a = int(math.floor((lo - offset_s) * sr))
        b = int(math.ceil((hi - offset_s) * sr))
        samples[max(a, 0) : min(b, len(samples))] = 0.0
        done.append((round(lo, 3), round(hi, 3)))
    return tuple(done)


@dataclass(frozen=True)
class ClipCutter:
    """Cuts agent utterances out of recordings; each recording is decoded once."""

    locate: Locate
    mutes: Mutes = no_mutes
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
        samples = rec.samples[a:b].copy()  # the cached recording stays as decoded
        muted = silence(samples, a / SAMPLE_RATE, self.mutes(call_id), SAMPLE_RATE)
        mime, data = encode_clip(samples, SAMPLE_RATE)
        src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        return Clip(
            start_s, end_s, src=src, warning=rec.warning, clip_start_s=a / SAMPLE_RATE, muted=muted
        )
