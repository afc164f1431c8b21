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

from pipeline.behaviours.figures import CallBehaviours, UtteranceBehaviour
from pipeline.intake import FileLook
from pipeline.rows import PiiSpan, SpeakerAttribution
from pipeline.speakers.options import CallVoices

Speaker = Literal["agent", "customer"]
ChannelLayout = Literal["agent_left", "agent_right", "mono"]
# How a call's text was made, stored with each call (calls.transcript_version). Bump it when
# transcription changes what it writes; stored calls of an older version are transcribed again
# ([run] reprocess_per_run). 1: mono speech packed per voice, greedy decoding. 2: mono speech in
# time order (transcribe first, attribute after), beam search where greedy is weak. 3: the
# hotword prompt on by default, text split between turns at sentence ends, masked numbers timed
# by Whisper's word timing. 4: a prompted window with speech decoded with low confidence is tried
# again without the prompt (pipeline/transcribe.py unprompted_retry). 5: so is one that loops, and
# the sampling fallback starts from a fixed seed (the same audio, the same text). (Turning [asr]
# hotword_prompt on or off does not change the version.)
TRANSCRIPT_VERSION = 5
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
class KnownFields:
    """What a rejected manifest row still says about its call, each field parsed where it
    parses: enough for the call's `calls` row with status 'failed'."""

    folder: str  # absolute path of the recordings folder
    agent_id: str | None
    recorded_at: datetime | None
    agent_hired_at: date | None
    channels: ChannelLayout | None
    topic: str | None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed, and why. Lands in the `failures` table."""

    stage: str  # manifest | audio | transcribe | metrics | ...
    reason: str
    call_id: str | None = None
    path: str | None = None
    row: int | None = None  # manifest line number (1 = header)
    # A rejected manifest row whose call_id is its own (not a duplicate's): the call keeps a
    # `calls` row with status 'failed' built from these (docs/CONTRACTS.md, "Input").
    known: KnownFields | None = None


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
class PreparedCall:
    """A call ready for transcription: decoded audio and its speech segments with speakers.

    A mono call carries its two voices (`voices`) and gets its segments once the chunk's mono
    calls are attributed (pipeline/mono.py); a stereo call may carry the embedding of its agent
    channel (`agent_embedding`), which refreshes the agent's voice print.
    """

    call: CallInput
    audio: CallAudio
    segments: tuple[Segment, ...]
    voices: CallVoices | None = None
    agent_embedding: np.ndarray | None = field(default=None, compare=False)
    look: FileLook | None = None  # the file as the run found it (size, mtime), stored with the call


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
class Coverage:
    """The transcript completeness audit for one speaker of a call."""

    speech_s: float  # VAD speech of the speaker
    covered_s: float  # of it, seconds under timestamped text that was kept

    @property
    def share(self) -> float | None:
        return self.covered_s / self.speech_s if self.speech_s > 0 else None


@dataclass(frozen=True)
class Transcript:
    """What transcription gives for one call: utterances, and per speaker how much of the
    detected speech the text covers."""

    utterances: list[Utterance]
    coverage: dict[str, Coverage]
    pii: list[PiiSpan] = field(default_factory=list)  # masked stretches, for muting clips


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
    # gain-free voice features (pipeline/prosody.py), the inputs of agitation
    f0_median_st: float | None
    f0_high_st: float | None
    f0_range_st: float | None
    f0_velocity_st_s: float | None
    hnr_db: float | None
    alpha_ratio_db: float | None
    hammarberg_db: float | None
    centroid_hz: float | None
    slope_db_khz: float | None
    level_range_db: float | None
    level_over_floor_db: float | None
    voiced_share: float | None
    politeness_hits: int
    impatience_hits: int
    confirmation_hits: int
    confusion_hits: int
    structure_hits: int
    forbidden_hits: int
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
    agent_asr_coverage: float | None  # completeness audit: share of VAD speech under kept text
    customer_asr_coverage: float | None
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
    # the agent's level against the customer's in the same recording: a gain or codec change of
    # the recording chain moves both sides, so it cancels here (raw loudness is a recording property)
    agent_loudness_vs_customer_db: float | None
    dead_air_count: int
    dead_air_total_s: float
    dead_air_max_s: float
    hold_count: int
    hold_total_s: float
    agent_mute_total_s: float | None  # stereo only: a mono mix has no agent line to mute
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
    agent_forbidden_count: int
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
class CallTextWork:
    """What the derive stage needs of one call's own text alone, done where the call is measured
    (on the workers) so that a night's derive only reads it: the words pairing compares and the
    service-behaviour detection (docs/CONTRACTS.md, "Derived tables")."""

    words: str  # jieba words of the whole transcript, jargon kept whole, space-separated
    behaviours: CallBehaviours | None  # None: no behaviour settings (a Lexicon built without)
    hits: tuple[UtteranceBehaviour, ...]


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
    pii: list[PiiSpan] = field(default_factory=list)
    attribution: SpeakerAttribution | None = None  # how the speech was given to the speakers
    look: FileLook | None = None  # the file's size and mtime: later runs skip it unread
    text_work: CallTextWork | None = None  # None: the call has no agent_id


@dataclass(frozen=True)
class CalibrationScore:
    """One evaluator's score of one rubric item in a calibration session (`calibration_scores`).

    side is the answer scored: 'early' or 'current' for rubric items, 'pair' for the verdict
    (item 'drifted', score 1 yes / 0 no) whose row also carries the evaluator's free comment.
    """

    session: str
    evaluator: str
    agent_id: str
    pair_id: str
    early_call_id: str
    early_utterance_id: int
    current_call_id: str
    current_utterance_id: int
    side: Literal["early", "current", "pair"]
    item: str
    score: int | None
    comment: str | None
    scored_at: datetime
    source_sha256: str  # the imported file's content hash (calibration_imports)


@dataclass(frozen=True)
class CalibrationImport:
    """One evaluator's exported file, imported once (`calibration_imports`)."""

    source_sha256: str
    file_name: str
    session: str
    evaluator: str
    n_scores: int
    imported_at: datetime
