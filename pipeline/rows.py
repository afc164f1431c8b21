"""Rows of the DuckDB tables that are not the stage records of pipeline/records.py: run
bookkeeping, failures, the call log, and the derived tables. pipeline/store/schema.py generates
every table from these classes and the records, so a column's name and type are defined once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal


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
    settings_sha256: str | None = None  # the settings the derived tables were computed with


@dataclass(frozen=True)
class FailureRow:
    """One failed input (`failures`): one row per distinct (stage, call_id, path,
    manifest_line, reason); a run that meets it again updates run_id and failed_at."""

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
    agent_id: str | None  # None only on a failed manifest row that lacks it
    recorded_at: datetime | None  # None only on a failed manifest row with a bad date
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
    pipeline_version: str | None = None  # callreview version that produced the call's rows
    asr_model: str | None = None  # the Whisper checkpoint that transcribed it
    file_size: int | None = None  # the recording's size and mtime when it was read: a later run
    file_mtime_ns: int | None = None  # that finds both unchanged skips the call without hashing
    masker_version: int | None = None  # PII rules its text was masked with (None: the first)
    transcript_version: int | None = None  # how its text was made (None: version 1)


@dataclass(frozen=True)
class CallDerived:
    """Figures of a call that need the agent's other calls (`call_derived`)."""

    call_id: str
    tenure_days: int | None
    cohort: str | None
    agitation: float | None
    agitation_high_share: float | None
    agent_pitch_vs_baseline_st: float | None
    customer_agitation: float | None  # the customer's rise over their own opening turns


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
class PiiSpan:
    """A stretch of an utterance masked as PII (`pii_spans`): the report mutes it in clips."""

    call_id: str
    utterance_id: int
    kind: str  # phone | id | card | email | number
    start_char: int  # in the unmasked text, which is never stored (in the text as stored, for
    # spans added when stored text was masked again under new rules: pipeline/store/remask.py)
    end_char: int
    start_s: float  # estimated from the character position, padded (pipeline/redact.py)
    end_s: float


@dataclass(frozen=True)
class AgitationBaseline:
    """An agent's early-career value of one agitation feature (pipeline/data/agitation.toml)."""

    agent_id: str
    feature: str
    weight: float
    source: str  # early | all
    mean: float | None
    std: float  # floored at the feature's std_floor
    n_utterances: int


@dataclass(frozen=True)
class CallFlag:
    """One QA rule checked on one call (`call_flags`): pipeline/data/rules.toml."""

    call_id: str
    rule: str
    label: str
    metric: str
    op: str
    threshold: float
    value: float | None
    hit: bool | None  # null when the call has no value for the metric


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
    # the early and current calls were not all transcribed the same way (transcript version
    # and Whisper checkpoint): part of a text figure's delta may be the transcriber's
    mixed_versions: bool | None = None


@dataclass(frozen=True)
class CallWords:
    """A cohort call's words as pairing reads them (`call_words`): jieba words of the whole
    transcript, jargon kept whole, space-separated. Kept across runs for calls whose text has
    not changed, so a night tokenises only its new cohort calls."""

    call_id: str
    words: str


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


# How a call's speech was given to agent and customer: "stereo" (one speaker per channel), or
# for a mono call the rule of pipeline/speakers/options.py `Decision` that chose the agent voice.
AttributionMethod = Literal[
    "stereo", "voice_print", "recurrence", "phrases", "talk_share", "single_voice"
]


@dataclass(frozen=True)
class SpeakerAttribution:
    """How a processed call's speech was attributed (`speaker_attribution`, one row per call;
    docs/METRICS.md, "Mono calls"). Weakly decided mono calls: method 'phrases', 'talk_share'
    or 'single_voice', a small margin, or a small separation."""

    call_id: str
    method: AttributionMethod
    margin: float | None  # cosine margin of the two voices to the agent's print; null: no print
    separation: float | None  # d' of the call's two-voice split (0: one voice); null for stereo
    print_calls: int | None  # calls behind the print the voices were compared with; null: none
    low_confidence: bool | None = None  # the agent voice may be the wrong one (pipeline.mono)


@dataclass(frozen=True)
class AgentVoicePrint:
    """An agent's voice print (`agent_voice_prints`), kept across runs: the mean speaker
    embedding of their stereo calls' agent channel, or of the agent voice recurring across their
    mono calls where they have no stereo call yet (pipeline/mono.py)."""

    agent_id: str
    embedding: list[float]  # 256 floats, L2-normalised GE2E embedding
    n_calls: int  # calls it is the mean of
    source: Literal["stereo", "recurrence"]
    updated_at: datetime
