"""Who speaks when on a mono call, and which voice is the agent: speaker embeddings, not order.

A mono recording mixes agent and customer on one channel. This module replaces the MFCC + pitch
k-means heuristic of pipeline.diarize (which also took the first speaker as the agent) with two
stages that fit a batch flow:

Stage A, per call (`embed_call` then `split_voices`): speaker embeddings of overlapping windows
  of the call's VAD speech, from the GE2E speaker encoder whose weights ship inside the
  `resemblyzer` wheel (resemblyzer/pretrained.pt; loaded here directly, so resemblyzer's own
  imports, webrtcvad among them, are never needed). The windows are split into two voices
  (or judged one voice), the split is carried down to 10 ms frames, and each voice keeps its
  mean embedding (`CallVoices`).

Stage B, per agent, once the agent's calls of a chunk are embedded (`choose_agent_voices`): in
  each call the agent is the voice closest to the agent's voice print. The print comes from
  the agent's stereo calls (agent channel, `voice_print_from_stereo`) where there are any;
  otherwise from recurrence: the agent is the one voice heard in every one of the agent's calls
  while customers change from call to call. Service phrases (您好, 请问, 有什么可以帮您, ...)
  counted on each voice's transcript break a tie only (`phrase_hits`). Who speaks first plays
  no part. `attribute` then turns a call's voices and the choice into `Segment`s.

Why the split works on near-identical voices: GE2E windows of one voice vary with what is said
more than two voices differ, so a plain k-means on the embeddings often splits by content.
The split is therefore made in a discriminant space: directions in which windows of the same
VAD span a short time apart (nearly always one voice) differ little, while the call as a whole
varies much (a generalised eigenproblem, like LDA with time adjacency as the label).
Measured figures: scripts/eval_mono.py.

How a batch flow calls it (the encoder is loaded once per worker, like the VAD model):

    encoder = load_encoder()
    # per mono call (after VAD on the mix):
    voices = split_voices(embed_call(x, sr, spans, encoder, options, call_id), options)
    # per stereo call of an agent (optional; after VAD on the agent channel):
    emb = embed_speech(agent_channel, sr, agent_spans, encoder, options)   # (256,) or None
    # per agent, once the chunk's calls are through stage A:
    vp = voice_print_from_stereo(agent_id, stereo_embs)                    # or None
    res = choose_agent_voices(agent_id, mono_voices_of_agent, options, vp) # AgentVoices
    segments = attribute(voices, res.choices[call_id])                     # list[Segment]
"""

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
from pipeline.speakers.options import (
    EMBED_DIM,
    AgentChoice,
    AgentVoices,
    CallVoices,
    CallWindows,
    SpeakerOptions,
    VoicePrint,
    VoiceTurn,
)
from pipeline.speakers.split import split_voices

__all__ = [
    "EMBED_DIM",
    "AgentChoice",
    "AgentVoices",
    "CallVoices",
    "CallWindows",
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
