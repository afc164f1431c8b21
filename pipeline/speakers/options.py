"""Speaker attribution on mono calls: its settings ([speakers]) and typed records (see
__init__). Light on purpose (numpy and pydantic only): pipeline.config imports it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as settings

ENCODER_SR = 16_000
MEL_HOP_S = 0.01  # GE2E: 40 mel bands, 25 ms window, 10 ms hop, power spectrogram (not log)
FRAME_S = 0.01  # resolution of the voice labels
EMBED_DIM = 256

# How a mono call's agent voice was chosen (docs/METRICS.md, "Mono calls"):
#   voice_print   closest to the agent's print from their stereo calls
#   recurrence    the voice that recurs across the agent's mono calls (this chunk's, and the
#                 recurrence print stored from earlier chunks)
#   phrases       service phrases on each voice's transcript (a print tie, or no print)
#   talk_share    no print, no second call, no phrase difference: the voice that talks more
#   single_voice  only one voice found: all speech is the agent's
Decision = Literal["voice_print", "recurrence", "phrases", "talk_share", "single_voice"]
PrintSource = Literal["stereo", "recurrence"]


@settings(config=ConfigDict(extra="forbid", frozen=True))
class SpeakerOptions:
    """[speakers] of callreview.toml, which documents each knob and its default (loaded by
    pipeline.config.load_config like the other sections: `config.speakers`)."""

    window_s: float
    hop_s: float
    min_window_s: float
    level_dbfs: float
    level_per: Literal["call", "window"]
    pair_gap_s: float
    pair_quantile: float
    shrinkage: float
    n_dims: int
    n_init: int
    one_voice_cosine: float  # 1.0 or more: never judged one voice
    min_turn_s: float
    batch_windows: int
    print_max_speech_s: float
    print_calls_max: int  # stereo calls an agent's print is built from; later ones are not embedded
    print_margin: float
    recur_margin: float  # the customer's voice recurs within this of the agent's: not sure
    phrase_lists: tuple[str, ...]  # names of [lexicon] phrases lists: the tie-breaker


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
    n_calls: int  # calls it is the mean of (stereo calls' agent channels, or mono votes)
    source: PrintSource  # a stereo print is never mixed with mono votes


@dataclass(frozen=True)
class AgentChoice:
    """Which voice of a call is the agent, and on what grounds."""

    call_id: str
    agent_voice: int  # index into CallVoices.centroids; the other voice is the customer
    similarity: tuple[float, ...]  # cosine of each voice to the agent's print
    margin: float  # |cosine difference| of the two voices to the print (0: no print, one voice)
    decided_by: Decision
    print_calls: int = 0  # calls behind the print that was compared with (0: none)
    customer_recurs: bool = False  # the other voice recurs across the calls nearly as much


@dataclass(frozen=True)
class AgentVoices:
    """Stage B output for one agent: the print used and the choice in each call."""

    voice_print: VoicePrint | None
    choices: Mapping[str, AgentChoice] = field(default_factory=dict)


def unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)
