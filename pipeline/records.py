"""Typed records passed between stages.

recordings (CallInput) -> audio (CallAudio) -> transcript (Utterance) -> metrics (UtteranceFigures,
CallFigures) -> derived (cohorts, agitation, pairs, alignment) -> DuckDB -> report.
Every stage takes and returns these, never loose dicts, so a column's origin is one grep away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

import numpy as np

Speaker = Literal["agent", "customer"]
ChannelLayout = Literal["agent_left", "agent_right", "mono"]
Cohort = Literal["early", "current"]


@dataclass(frozen=True)
class CallInput:
    """One valid manifest row, resolved against its folder."""

    call_id: str
    agent_id: str
    path: str  # absolute path of the audio file
    rel_path: str  # as written in the manifest
    folder: str  # absolute path of the recordings folder
    recorded_at: datetime
    agent_hired_at: date | None
    channels: ChannelLayout | None  # None: decided from the file (stereo -> agent_left)
    topic: str | None
    attributes: dict[str, str] = field(default_factory=dict)  # unknown manifest columns, kept


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed, and why. Lands in the `failures` table."""

    stage: str  # manifest | audio | transcribe | metrics | ...
    reason: str
    call_id: str | None = None
    path: str | None = None
    row: int | None = None  # manifest line number (1 = header)


@dataclass
class CallAudio:
    """Decoded call audio at `sr`, split per speaker.

    For stereo calls each speaker has its own channel. For mono calls `mono` is set and
    `agent`/`customer` are None until diarisation attributes the segments.
    """

    sr: int
    duration_s: float
    source_sr: int
    n_channels: int
    layout: ChannelLayout
    sha256: str
    agent: np.ndarray | None = None
    customer: np.ndarray | None = None
    mono: np.ndarray | None = None

    def channel(self, speaker: Speaker) -> np.ndarray | None:
        return self.agent if speaker == "agent" else self.customer


@dataclass(frozen=True)
class Segment:
    """A stretch of speech found by VAD, in seconds from call start."""

    start_s: float
    end_s: float
    speaker: Speaker


@dataclass
class Utterance:
    """One speaker turn with its transcript (simplified Chinese, PII-masked)."""

    call_id: str
    utterance_id: int  # order in the call by start time, 0-based
    speaker: Speaker
    start_s: float
    end_s: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class UtteranceFigures:
    """Per-utterance tone and clarity figures (see docs/METRICS.md)."""

    call_id: str
    utterance_id: int
    n_chars: int
    speech_rate_cpm: float | None
    pitch_median_hz: float | None
    pitch_range_st: float | None
    loudness_dbfs: float | None
    loudness_std_db: float | None
    politeness_hits: int
    impatience_hits: int
    confirmation_hits: int
    confusion_hits: int
    structure_hits: int
    jargon_hits: int
    n_words: int
    overlaps_other_s: float  # seconds this utterance overlaps the other speaker's speech
    interrupts: bool  # started while the other speaker had been talking for > threshold


@dataclass
class CallFigures:
    """Call-level tone and clarity figures; every field is documented in docs/METRICS.md.

    Baseline-relative figures (agitation, pitch vs the agent's early baseline) need the agent's
    other calls and are computed later, in pipeline.derive.
    """

    call_id: str
    # tone, audio
    agent_speech_s: float
    customer_speech_s: float
    agent_talk_ratio: float | None
    agent_speech_rate_cpm: float | None
    customer_speech_rate_cpm: float | None
    agent_fast_speech_share: float | None
    agent_pitch_median_hz: float | None
    agent_pitch_range_st: float | None
    customer_pitch_median_hz: float | None
    agent_loudness_dbfs: float | None
    agent_loudness_std_db: float | None
    customer_loudness_dbfs: float | None
    dead_air_count: int
    dead_air_total_s: float
    overtalk_count: int | None
    overtalk_total_s: float | None
    agent_interruptions: int | None
    customer_interruptions: int | None
    response_latency_median_s: float | None
    # tone, text
    agent_politeness_count: int
    agent_politeness_per_min: float | None
    agent_impatience_count: int
    agent_impatience_per_min: float | None
    # clarity
    agent_sentence_chars_mean: float | None
    agent_long_sentence_share: float | None
    agent_structure_count: int
    agent_jargon_count: int
    agent_jargon_per_100_words: float | None
    agent_confirmation_count: int
    customer_confusion_count: int
    agent_repeat_count: int
    agent_chars_per_customer_turn: float | None


@dataclass
class CallResult:
    """Everything the per-call stages produce for one call."""

    call: CallInput
    duration_s: float
    sha256: str
    layout: ChannelLayout
    utterances: list[Utterance]
    figures: list[UtteranceFigures]
    call_figures: CallFigures
