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


@dataclass(frozen=True)
class CallAudio:
    """Decoded call audio at `sr`, one track per recorded channel.

    Stereo calls hold (agent, customer), already swapped for `agent_right`; mono calls hold the
    single mix, on which both speakers are heard until diarisation attributes the segments.
    """

    sr: int
    duration_s: float
    source_sr: int
    n_channels: int
    layout: ChannelLayout
    sha256: str
    tracks: tuple[np.ndarray, ...]

    @property
    def is_mono(self) -> bool:
        return self.layout == "mono"

    def samples(self, speaker: Speaker) -> np.ndarray:
        """What `speaker` is heard on: their own channel, or the mix of a mono call."""
        return self.tracks[0] if self.is_mono or speaker == "agent" else self.tracks[1]

    def clip(self, speaker: Speaker, start_s: float, end_s: float) -> np.ndarray:
        x = self.samples(speaker)
        return x[int(start_s * self.sr) : int(end_s * self.sr)]


@dataclass(frozen=True)
class Segment:
    """A stretch of speech found by VAD, in seconds from call start."""

    start_s: float
    end_s: float
    speaker: Speaker


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class CallResult:
    """Everything the per-call stages produce for one call."""

    call: CallInput
    duration_s: float
    sha256: str
    layout: ChannelLayout
    utterances: list[Utterance]
    figures: list[UtteranceFigures]
    call_figures: CallFigures


# --------------------------------------------------------------------------------------------
# Rows of the DuckDB tables that are not the records above. pipeline/store/schema.py generates
# every table from these classes, so a column's name and type are defined exactly once.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    """One run of the review flow (`runs`)."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    folder: str
    n_inputs: int
    n_ok: int | None
    n_failed: int | None
    n_skipped: int | None
    asr_model: str
    device: str
    versions: str  # JSON: package versions that produced the run
    status: str  # running | ok | ok_with_failures


@dataclass(frozen=True)
class FailureRow:
    """One input that failed, in one run (`failures`)."""

    run_id: str
    stage: str
    call_id: str | None
    path: str | None
    manifest_line: int | None
    reason: str
    failed_at: datetime


@dataclass(frozen=True)
class CallRow:
    """One call as the manifest and the run saw it (`call_log`, behind the `calls` view)."""

    call_id: str
    agent_id: str
    recorded_at: datetime
    agent_hired_at: date | None
    topic: str | None
    channels: str | None
    folder: str
    path: str
    audio_sha256: str | None
    duration_s: float | None
    status: str  # ok | failed
    error: str | None
    run_id: str
    processed_at: datetime
    attributes: str  # JSON: the manifest's extra columns


@dataclass(frozen=True)
class CallDerived:
    """Figures of a call that need the agent's other calls (`call_derived`)."""

    call_id: str
    tenure_days: int | None
    cohort: str | None
    agitation: float | None
    agitation_high_share: float | None
    agent_pitch_vs_baseline_st: float | None


@dataclass(frozen=True)
class UtteranceDerived:
    call_id: str
    utterance_id: int
    pitch_vs_baseline_st: float | None
    agitation: float | None


@dataclass(frozen=True)
class AgentBaseline:
    """An agent's early-career voice, the reference agitation is measured against."""

    agent_id: str
    baseline_source: str  # early | all
    baseline_pitch_hz: float | None
    pitch_st_mean: float | None
    pitch_st_std: float | None
    pitch_range_st_mean: float | None
    pitch_range_st_std: float | None
    loudness_dbfs_mean: float | None
    loudness_dbfs_std: float | None
    speech_rate_cpm_mean: float | None
    speech_rate_cpm_std: float | None


@dataclass(frozen=True)
class AgentDrift:
    """One agent and one call metric, early vs current (`agent_drift`)."""

    agent_id: str
    metric: str
    early_mean: float | None
    current_mean: float | None
    delta: float | None
    n_early: int
    n_current: int
    effect_size: float | None


@dataclass(frozen=True)
class PairRow:
    """An early call paired with a current call on the same question (`call_pairs`)."""

    pair_id: str
    agent_id: str
    early_call_id: str
    current_call_id: str
    topic: str | None
    similarity: float


@dataclass(frozen=True)
class AlignedRow:
    """An early agent turn aligned with the current turn answering the same question."""

    pair_id: str
    agent_id: str
    early_call_id: str
    current_call_id: str
    early_utterance_id: int
    current_utterance_id: int
    similarity: float
    early_customer_text: str
    early_text: str
    current_customer_text: str
    current_text: str
    early_start_s: float
    early_end_s: float
    current_start_s: float
    current_end_s: float
    delta_speech_rate_cpm: float | None
    delta_pitch_vs_baseline_st: float | None
    delta_loudness_db: float | None
    delta_agitation: float | None
