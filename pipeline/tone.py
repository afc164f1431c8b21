"""Tone figures: how the agent sounds (pitch, loudness, speaking rate) and how the two sides
take turns (overtalk, interruptions, dead air, response latency), plus politeness and
impatience phrases. Formulas, units and thresholds: docs/METRICS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

from pipeline.audio import SAMPLE_RATE
from pipeline.config import Lexicon, ProsodyOptions, ToneOptions
from pipeline.prosody import Prosody, voice
from pipeline.records import Utterance
from pipeline.text import count_phrases, n_chars

FRAME = 1024  # 64 ms at 16 kHz: two periods of the lowest pitch we track (65 Hz)
HOP = 320  # 20 ms


@dataclass(frozen=True)
class Acoustics:
    pitch_median_hz: float | None
    pitch_range_st: float | None  # 90th - 10th percentile of voiced pitch, in semitones
    loudness_dbfs: float | None  # power mean over frames above silence_dbfs
    loudness_std_db: float | None
    voiced_pitch_hz: np.ndarray  # per voiced frame, for call-level pooling
    voice: Prosody  # the gain-free voice features agitation is built on


def hz_to_st(hz: np.ndarray | float, ref_hz: np.ndarray | float = 1.0) -> np.ndarray | float:
    """Semitones of `hz` above `ref_hz`: 12 log2(hz / ref). Pitch differences are heard in ratios."""
    return 12 * np.log2(np.divide(hz, ref_hz))


def frame_db(x: np.ndarray) -> np.ndarray:
    rms = librosa.feature.rms(y=x, frame_length=FRAME, hop_length=HOP, center=True)[0]
    return 20 * np.log10(np.maximum(rms, 1e-10))


def acoustics(x: np.ndarray, options: ToneOptions, voice_options: ProsodyOptions) -> Acoustics:
    """Loudness, pitch and the voice features of one utterance's samples.

    Pitch comes from pipeline.prosody (YIN in the telephone band, 8 kHz): chosen over pYIN by
    measurement (same median within 1 st on most clips, about 100x faster; docs/METRICS.md).
    """
    features, pitch = voice(x, voice_options)
    loud = loud_std = None
    if len(x) >= FRAME:
        db = frame_db(x)
        active = db > options.silence_dbfs
        if active.any():
            power = 10 ** (db[active] / 10)
            loud = float(10 * np.log10(power.mean()))
            loud_std = float(db[active].std())
    median_hz = None if features.f0_median_st is None else 100 * 2 ** (features.f0_median_st / 12)
    return Acoustics(median_hz, features.f0_range_st, loud, loud_std, pitch, features)


def speech_rate_cpm(text: str, duration_s: float, options: ToneOptions) -> float | None:
    """Characters per minute of this speaker's speech (字/分钟)."""
    return n_chars(text) / (duration_s / 60) if duration_s > options.rate_min_duration_s else None


@dataclass(frozen=True)
class TurnTaking:
    overlap_s: list[float]  # per utterance: seconds overlapping the other speaker
    interrupts: list[bool]  # per utterance: started while the other side had talked > threshold
    overtalk_count: int
    overtalk_total_s: float
    agent_interruptions: int
    customer_interruptions: int
    dead_air_count: int
    dead_air_total_s: float
    dead_air_max_s: float  # the longest gap with nobody speaking (0 without gaps)
    hold_count: int  # gaps longer than hold_min_s: the customer left waiting
    hold_total_s: float
    latencies_s: list[float]  # agent response start - preceding customer end (>= 0)


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def turn_taking(utts: list[Utterance], options: ToneOptions) -> TurnTaking:
    """Overlap, interruptions, dead air and latency from utterance timings.

    Overlap needs each side on its own channel: on mono calls segments cannot overlap, so the
    overlap-based figures are reported as 0 there and flagged null by the caller.
    """
    overlap = [0.0] * len(utts)
    interrupts = [False] * len(utts)
    overtalk_spans: list[tuple[float, float]] = []
    for i, u in enumerate(utts):
        for v in utts:
            if v.speaker == u.speaker:
                continue
            a, b = max(u.start_s, v.start_s), min(u.end_s, v.end_s)
            if b > a:
                overlap[i] += b - a
                if b - a >= options.overtalk_min_s:
                    overtalk_spans.append((a, b))
            # u starts inside v, after v had been going for a while, and v goes on past u's start
            if v.start_s + options.interrupt_min_s <= u.start_s < v.end_s - options.overtalk_min_s:
                interrupts[i] = True
    overtalk = _merge(overtalk_spans)

    speech = _merge([(u.start_s, u.end_s) for u in utts])
    gaps = [b2 - a1 for (_, a1), (b2, _) in zip(speech, speech[1:], strict=False)]
    dead = [g for g in gaps if g > options.dead_air_min_s]
    holds = [g for g in gaps if g > options.hold_min_s]

    latencies: list[float] = []
    for prev, u in zip(utts, utts[1:], strict=False):
        if prev.speaker == "customer" and u.speaker == "agent":
            latencies.append(max(0.0, u.start_s - prev.end_s))
    return TurnTaking(
        overlap_s=overlap,
        interrupts=interrupts,
        overtalk_count=len(overtalk),
        overtalk_total_s=float(sum(b - a for a, b in overtalk)),
        agent_interruptions=sum(
            1 for u, f in zip(utts, interrupts, strict=True) if f and u.speaker == "agent"
        ),
        customer_interruptions=sum(
            1 for u, f in zip(utts, interrupts, strict=True) if f and u.speaker == "customer"
        ),
        dead_air_count=len(dead),
        dead_air_total_s=float(sum(dead)),
        dead_air_max_s=float(max(gaps, default=0.0)),
        hold_count=len(holds),
        hold_total_s=float(sum(holds)),
        latencies_s=latencies,
    )


def muted_seconds(x: np.ndarray, start_s: float, end_s: float, options: ToneOptions) -> float:
    """Seconds between start_s and end_s in stretches of digital silence (a muted line: frames
    below mute_dbfs, far under any line noise) lasting at least mute_min_s."""
    a, b = int(start_s * SAMPLE_RATE), int(end_s * SAMPLE_RATE)
    if b - a < FRAME:
        return 0.0
    quiet = frame_db(x[a:b]) < options.mute_dbfs
    min_frames = int(options.mute_min_s * SAMPLE_RATE / HOP)
    total = run = 0
    for q in np.append(quiet, False):  # a closing False ends the last run
        if q:
            run += 1
            continue
        if run >= min_frames:
            total += run
        run = 0
    return total * HOP / SAMPLE_RATE


def phrase_counts(text: str, lexicon: Lexicon) -> dict[str, int]:
    """Hits per phrase list (politeness, impatience, confirmation, confusion, structure...)."""
    return {pl.name: count_phrases(text, pl.phrases) for pl in lexicon.phrases}
