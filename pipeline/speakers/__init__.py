"""Who speaks when on a mono call, and which voice is the agent: speaker embeddings, not order.

A mono recording mixes agent and customer on one channel. This package replaces the MFCC +
pitch k-means heuristic that took the first speaker as the agent, with two stages that fit a
chunked batch flow (pipeline/mono.py is what the flow calls; settings: [speakers],
`SpeakerOptions`; measured: scripts/eval_mono.py):

Stage A, per call (`embed_call` then `split_voices`; pipeline.mono.split_mono): speaker
  embeddings of overlapping windows of the call's VAD speech, from the GE2E speaker encoder
  whose weights ship inside the `resemblyzer` wheel (resemblyzer/pretrained.pt; loaded here
  directly, so resemblyzer's own imports, webrtcvad among them, are never needed). The windows
  are split into two voices (or judged one voice), the split is carried down to 10 ms frames,
  and each voice keeps its mean embedding (`CallVoices`).

Stage B, per agent, once the agent's calls of a chunk are embedded (`choose_agent_voices`;
  pipeline.mono.attribute_chunk): in each call the agent is the voice closest to the agent's
  voice print. The print comes from the agent's stereo calls (agent channel,
  `voice_print_from_stereo`) where there are any; otherwise from recurrence: the agent is the
  one voice heard in every one of the agent's calls while customers change from call to call.
  Service phrases (the [lexicon] lists [speakers] phrase_lists names) counted on each voice's
  transcript break a tie (`phrase_hits`). Who speaks first plays no part. `attribute` then
  turns a call's voices and the choice into `Segment`s.

Why the split works on near-identical voices: GE2E windows of one voice vary with what is said
more than two voices differ, so a plain k-means on the embeddings often splits by content.
The split is therefore made in a discriminant space: directions in which windows of the same
VAD span a short time apart (nearly always one voice) differ little, while the call as a whole
varies much (a generalised eigenproblem, like LDA with time adjacency as the label).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline.speakers.options import (
    EMBED_DIM,
    AgentChoice,
    AgentVoices,
    CallVoices,
    CallWindows,
    Decision,
    PrintSource,
    SpeakerOptions,
    VoicePrint,
    VoiceTurn,
)

if TYPE_CHECKING:
    from pipeline.speakers.choose import (
        attribute,
        choose_agent_voices,
        phrase_hits,
        voice_print_from_stereo,
    )
    from pipeline.speakers.encoder import (
        SpeakerEncoder,
        bundled_weights,
        embed_call,
        embed_speech,
        load_encoder,
    )
    from pipeline.speakers.split import split_voices

# The stages load torch, librosa and scipy: imported on first use, so that pipeline.config
# (which imports SpeakerOptions) stays light.
_STAGES = {
    "attribute": "choose",
    "choose_agent_voices": "choose",
    "phrase_hits": "choose",
    "voice_print_from_stereo": "choose",
    "SpeakerEncoder": "encoder",
    "bundled_weights": "encoder",
    "embed_call": "encoder",
    "embed_speech": "encoder",
    "load_encoder": "encoder",
    "split_voices": "split",
}


def __getattr__(name: str) -> Any:
    if name in _STAGES:
        return getattr(importlib.import_module(f"pipeline.speakers.{_STAGES[name]}"), name)
    raise AttributeError(f"module 'pipeline.speakers' has no attribute {name!r}")


__all__ = [
    "EMBED_DIM",
    "AgentChoice",
    "AgentVoices",
    "CallVoices",
    "CallWindows",
    "Decision",
    "PrintSource",
    "SpeakerEncoder",
    "SpeakerOptions",
    "VoicePrint",
    "VoiceTurn",
    "attribute",
    "bundled_weights",
    "choose_agent_voices",
    "embed_call",
    "embed_speech",
    "load_encoder",
    "phrase_hits",
    "split_voices",
    "voice_print_from_stereo",
]
