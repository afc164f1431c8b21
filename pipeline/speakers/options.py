"""Speaker attribution on mono calls: its settings and typed records (see __init__)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ENCODER_SR = 16_000
MEL_HOP_S = 0.01  # GE2E: 40 mel bands, 25 ms window, 10 ms hop, power spectrogram (not log)
FRAME_S = 0.01  # resolution of the voice labels
EMBED_DIM = 256

Decision = Literal["voice_print", "recurrence", "phrases", "talk_share", "single_voice"]


@dataclass(frozen=True)
class SpeakerOptions:
    """Knobs of mono speaker attribution (to move into pipeline/config.py as [speakers])."""

    window_s: float = 1.6  # GE2E partial-utterance length (what the encoder was trained on)
    hop_s: float = 0.4  # step between windows inside a VAD span
    min_window_s: float = 0.5  # spans shorter than this are not embedded (labelled by neighbours)
    level_dbfs: float = (
        -30.0
    )  # speech is scaled to this RMS before embedding (as resemblyzer does)...
    level_per: Literal["call", "window"] = "call"  # ...the call's speech as a whole, or each window
    pair_gap_s: float = 0.8  # windows this far apart in one span are taken as one voice...
    pair_quantile: float = 0.5  # ...when their difference is among the smaller half of such pairs
    shrinkage: float = 0.4  # regularises the within-voice scatter (share of its mean variance)
    n_dims: int = 3  # discriminant directions the two voices are split in
    n_init: int = 10  # k-means restarts
    # Two voice centroids closer than this cosine: one voice. Off by default: on the sample calls
    # one voice split in two gave cosines 0.88-0.98 and two real voices 0.64-0.97 (no gap).
    one_voice_cosine: float | None = None
    min_turn_s: float = 0.3  # shorter label runs are merged into their neighbours
    print_margin: float = 0.01  # a cosine margin smaller than this is a tie (phrases decide)
    batch_windows: int = 128  # windows per encoder batch
    service_phrases: tuple[str, ...] = (
        "您好",
        "请问",
        "有什么可以帮您",
        "很高兴为您服务",
        "感谢您的来电",
        "客服",
        "帮您查",
        "请您稍等",
        "还有什么问题",
        "祝您生活愉快",
    )


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True, eq=False)
class CallWindows:
    """Speaker embeddings of a call's speech windows (stage A, first half)."""

    call_id: str
    duration_s: float
    spans: tuple[tuple[float, float], ...]  # the VAD speech spans the windows were cut from
    starts_s: np.ndarray  # (n,) window start times
    ends_s: np.ndarray  # (n,)
    span_index: np.ndarray  # (n,) which span each window belongs to
    embeddings: np.ndarray  # (n, 256) L2-normalised GE2E embeddings, float32


@dataclass(frozen=True)
class VoiceTurn:
    """A stretch of speech given to one voice of a call (voice index into CallVoices)."""

    start_s: float
    end_s: float
    voice: int


@dataclass(frozen=True, eq=False)
class CallVoices:
    """A call split into one or two voices (stage A output; what stage B works on)."""

    call_id: str
    centroids: np.ndarray  # (k, 256) L2-normalised mean embedding per voice, k = 1 or 2
    speech_s: tuple[float, ...]  # seconds of speech per voice
    turns: tuple[VoiceTurn, ...]
    separation: float  # d' of the split in the discriminant space (0 for one voice)

    @property
    def n_voices(self) -> int:
        return len(self.centroids)


@dataclass(frozen=True, eq=False)
class VoicePrint:
    """An agent's voice: mean GE2E embedding (L2-normalised)."""

    agent_id: str
    embedding: np.ndarray  # (256,)
    n_calls: int
    source: Literal["stereo", "recurrence"]


@dataclass(frozen=True)
class AgentChoice:
    """Which voice of a call is the agent, and on what grounds."""

    call_id: str
    agent_voice: int  # index into CallVoices.centroids; the other voice is the customer
    similarity: tuple[float, ...]  # cosine of each voice to the agent's print
    margin: float  # similarity of the chosen voice minus the other's (0 for one voice)
    decided_by: Decision


@dataclass(frozen=True)
class AgentVoices:
    """Stage B output for one agent: the print used and the choice in each call."""

    voice_print: VoicePrint | None
    choices: Mapping[str, AgentChoice] = field(default_factory=dict)


def unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)
