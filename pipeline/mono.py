"""Mono calls in the chunked flow: who speaks when, and which voice is the agent.

A mono recording mixes agent and customer on one channel. pipeline/speakers/ holds the method
(GE2E speaker embeddings split into two voices per call; the agent voice chosen per agent);
this module is what the flow calls, per call and per chunk of calls:

  prepare, per mono call:    spans = vad.speech_spans(mix); voices = split_mono(audio, spans, ...)
  prepare, per stereo call:  emb = agent_channel_embedding(...) where needs_print(agent), or None
  per chunk, an agent's first mono call:  embs = first_print_embeddings(stored stereo, chunk's)
  per chunk:                 segments, new_prints, choices = attribute_chunk(mono, prints, embs, o)
  after transcription:       transcript, choice = settle_by_phrases(transcript, voices, choice, ...)
  write:                     save_attributions(con, [attribution_row(...), stereo_attribution(...)])
                             save_voice_prints(con, new_prints)

The agent voice of a mono call is, in order: the voice closest to the agent's voice print from
their stereo calls (stored from earlier runs and updated with this chunk's stereo calls); else
the voice that recurs across the agent's mono calls of the chunk (anchored by the recurrence
print stored from earlier chunks, if any); else, after transcription, the voice with more
service phrases; else the voice that talks more. Who speaks first plays no part.
docs/METRICS.md, "Mono calls", has the measured figures (scripts/eval_mono.py).
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch

from pipeline.audio import AudioError, load_call
from pipeline.config import Config, ConfigError, Lexicon, SpeakerOptions
from pipeline.records import CallAudio, CallInput, PreparedCall, Segment, Transcript, Utterance
from pipeline.rows import SpeakerAttribution
from pipeline.speakers import (
    AgentChoice,
    CallVoices,
    SpeakerEncoder,
    VoicePrint,
    VoiceTurn,
    attribute,
    choose_agent_voices,
    embed_call,
    embed_speech,
    load_encoder,
    phrase_hits,
    split_voices,
)
from pipeline.speakers.options import unit
from pipeline.vad import find_segments

SIDES = ("agent", "customer")

__all__ = [
    "agent_channel_embedding",
    "attribute_chunk",
    "attribution_row",
    "first_print_embeddings",
    "load_encoder",
    "needs_print",
    "service_phrases",
    "settle_by_phrases",
    "split_mono",
    "stereo_agent_embedding",
    "stereo_attribution",
    "swap_speakers",
    "update_stereo_print",
]


# ----------------------------------------------------------------------------- per call


def split_mono(
    audio: CallAudio,
    spans: Sequence[tuple[float, float]],
    encoder: SpeakerEncoder,
    options: SpeakerOptions,
    call_id: str = "",
) -> CallVoices:
    """Stage A for one mono call: its VAD speech (`spans`, from vad.speech_spans on the mix)
    split into one or two voices, with each voice's turns and mean embedding.

    Deterministic; about 1.2 s of one CPU core per minute of speech (the encoder runs
    single-threaded). Speech too short to embed (every span under `min_window_s`) is one voice.
    """
    if not audio.is_mono:
        raise ValueError("split_mono takes a mono call: a stereo call's channels name the speakers")
    windows = embed_call(audio.samples("agent"), audio.sr, spans, encoder, options, call_id)
    voices = split_voices(windows, options)
    if not voices.turns and spans:  # nothing long enough to embed: keep the speech, one voice
        turns = tuple(VoiceTurn(round(a, 3), round(b, 3), 0) for a, b in spans if b > a)
        voices = replace(voices, turns=turns)
    return voices


def stereo_agent_embedding(
    audio: CallAudio,
    agent_spans: Sequence[tuple[float, float]],
    encoder: SpeakerEncoder,
    options: SpeakerOptions,
) -> np.ndarray | None:
    """The (256,) mean speaker embedding of a stereo call's agent channel, over its VAD speech
    `agent_spans` (at most the first `print_max_speech_s` of it); None when too little speech.
    Feed it to `attribute_chunk` (stereo_embeddings) to build or refresh the agent's print."""
    if audio.is_mono:
        raise ValueError(
            "stereo_agent_embedding takes a stereo call: a mono mix has no agent channel"
        )
    spans, left = [], options.print_max_speech_s
    for a, b in sorted(agent_spans):
        if left <= 0:
            break
        spans.append((a, min(b, a + left)))
        left -= spans[-1][1] - a
    return embed_speech(audio.samples("agent"), audio.sr, spans, encoder, options)


# ----------------------------------------------------------------------------- voice prints


def needs_print(agent_id: str, prints: Mapping[str, VoicePrint], config: Config) -> bool:
    """Whether a stereo call of this agent should feed the agent's voice print as it is
    prepared: only once the agent has a print (their first mono call built it,
    `first_print_embeddings`) that still wants calls."""
    stored = prints.get(agent_id)
    return stored is not None and (
        stored.source != "stereo" or stored.n_calls < config.speakers.print_calls_max
    )


def agent_channel_embedding(
    audio: CallAudio, segments: Sequence[Segment], encoder: SpeakerEncoder, config: Config
) -> np.ndarray | None:
    """stereo_agent_embedding over a stereo call's agent VAD segments."""
    agent_spans = [(s.start_s, s.end_s) for s in segments if s.speaker == "agent"]
    return stereo_agent_embedding(audio, agent_spans, encoder, config.speakers)


def first_print_embeddings(
    stored: Sequence[CallInput],
    prepared: Sequence[PreparedCall],
    vad_model: torch.nn.Module,
    encoder: SpeakerEncoder,
    config: Config,
) -> dict[str, list[np.ndarray | None]]:
    """agent_id -> the agent-channel embeddings an agent's first voice print is built from.

    Prints are built only when an agent's first mono call needs one (most agents never have a
    mono call, and embedding costs about 1 s of CPU per call-minute): from the agent's `stored`
    stereo calls (pipeline.store.stored_stereo_calls; read again, the one re-read of stored recordings)
    and this chunk's `prepared` stereo calls (their audio is still in memory). A stored
    recording that no longer reads is left out: the print is built from the others."""
    out: dict[str, list[np.ndarray | None]] = {}
    for call in stored:
        try:
            audio = load_call(call.path, call.channels, config.audio)
        except (AudioError, OSError):
            continue
        segments = find_segments(audio, config.vad, vad_model)
        out.setdefault(call.agent_id, []).append(
            agent_channel_embedding(audio, segments, encoder, config)
        )
    for p in prepared:
        out.setdefault(p.call.agent_id, []).append(
            agent_channel_embedding(p.audio, p.segments, encoder, config)
        )
    return out


# ----------------------------------------------------------------------------- per chunk


def update_stereo_print(
    agent_id: str, stored: VoicePrint | None, embeddings: Sequence[np.ndarray | None]
) -> VoicePrint | None:
    """The agent's stereo print with these stereo calls' agent embeddings added, weighted by
    call counts; a stored recurrence print is replaced (stereo is the better evidence)."""
    vecs = [unit(np.asarray(e, np.float32)) for e in embeddings if e is not None]
    vecs = [v for v in vecs if np.linalg.norm(v) > 0]
    if not vecs:
        return None
    total, n = np.sum(vecs, axis=0), len(vecs)
    if stored is not None and stored.source == "stereo":
        total, n = total + stored.n_calls * unit(stored.embedding), n + stored.n_calls
    return VoicePrint(agent_id, unit(total), n, "stereo")


def attribute_chunk(
    mono: Sequence[tuple[str, str, CallVoices]],
    prints: Mapping[str, VoicePrint],
    stereo_embeddings: Mapping[str, Sequence[np.ndarray | None]],
    options: SpeakerOptions,
    phrase_counts: Mapping[str, tuple[int, ...]] | None = None,
    stored: Container[str] = (),
) -> tuple[dict[str, list[Segment]], dict[str, VoicePrint], dict[str, AgentChoice]]:
    """Stage B for one chunk: which voice of each mono call is the agent.

    mono: (call_id, agent_id, split_mono(...)) of the chunk's mono calls.
    prints: the stored prints by agent_id (store.load_voice_prints), at least of these agents.
    stereo_embeddings: agent_id -> this chunk's stereo_agent_embedding results (None skipped).
    phrase_counts: call_id -> speakers.phrase_hits per voice, where transcripts are already
      known (the flow settles after transcription instead: settle_by_phrases).
    stored: call_ids an earlier run already processed (a --force re-run): they are attributed
      as usual, but an agent's recurrence print is not updated from a chunk holding any of
      them, since they already count in it.

    Returns (segments by call_id, sorted by start; the prints to store, only those that changed;
    the choice per call_id, for attribution_row). Prints: an agent's stereo print gains this
    chunk's stereo calls; an agent without one gets (or updates) a recurrence print from the
    chunk's mono calls when there is one to be had (two or more calls, or one and a stored
    recurrence print). A chunk holding a single mono call of an agent is decided by the stored
    print, else by phrases or talk share: the result depends on chunking only where the agent
    has neither stereo calls nor another mono call in the chunk.
    """
    ids = [call_id for call_id, _, _ in mono]
    if len(set(ids)) != len(ids):
        raise ValueError("attribute_chunk: a call_id appears twice in the chunk")
    updated: dict[str, VoicePrint] = {}
    for agent_id in sorted(stereo_embeddings):
        vp = update_stereo_print(agent_id, prints.get(agent_id), stereo_embeddings[agent_id])
        if vp is not None:
            updated[agent_id] = vp
    by_agent: dict[str, list[CallVoices]] = {}
    for call_id, agent_id, voices in mono:
        by_agent.setdefault(agent_id, []).append(replace(voices, call_id=call_id))
    segments: dict[str, list[Segment]] = {}
    choices: dict[str, AgentChoice] = {}
    for agent_id in sorted(by_agent):
        calls = by_agent[agent_id]
        vp = updated.get(agent_id) or prints.get(agent_id)
        res = choose_agent_voices(agent_id, calls, options, vp, phrase_counts)
        voting = any(c.n_voices >= 1 for c in calls) and not any(c.call_id in stored for c in calls)
        if (vp is None or vp.source == "recurrence") and res.voice_print is not None and voting:
            updated[agent_id] = replace(res.voice_print, source="recurrence")
        for c in calls:
            choices[c.call_id] = res.choices[c.call_id]
            segments[c.call_id] = attribute(c, res.choices[c.call_id])
    return segments, updated, choices


# ----------------------------------------------------------------------------- after transcription


def service_phrases(lexicon: Lexicon, options: SpeakerOptions) -> tuple[str, ...]:
    """The tie-breaker's phrases: the [lexicon] phrases lists that [speakers] phrase_lists
    names. Raises ConfigError for a name that is not a list (call it before the first call)."""
    known = [pl.name for pl in lexicon.phrases]
    unknown = [name for name in options.phrase_lists if name not in known]
    if unknown:
        raise ConfigError(
            f"[speakers] phrase_lists: {', '.join(unknown)} is not a list of the phrases file "
            f"(lists: {', '.join(known)})"
        )
    out: dict[str, None] = {}
    for name in options.phrase_lists:
        out.update(dict.fromkeys(lexicon.phrase_list(name)))
    return tuple(out)


def _weak(choice: AgentChoice, options: SpeakerOptions) -> bool:
    if choice.decided_by == "talk_share" or choice.customer_recurs:
        return True
    return choice.decided_by in ("voice_print", "recurrence") and (
        choice.margin < options.print_margin
    )


def swap_speakers(transcript: Transcript) -> Transcript:
    """The same transcript with agent and customer swapped (utterances and coverage)."""
    other = {"agent": "customer", "customer": "agent"}
    utts: list[Utterance] = [replace(u, speaker=other[u.speaker]) for u in transcript.utterances]
    coverage = {other.get(k, k): v for k, v in transcript.coverage.items()}
    return replace(transcript, utterances=utts, coverage=coverage)


def settle_by_phrases(
    transcript: Transcript,
    voices: CallVoices,
    choice: AgentChoice,
    phrases: Sequence[str],
    options: SpeakerOptions,
) -> tuple[Transcript, AgentChoice]:
    """A mono call decided weakly (talk share, or voices tied on the print within
    `print_margin`) is decided by the service phrases on each side's transcript: when the side
    labelled customer holds more of them, agent and customer are swapped. Any other call, or
    equal counts, comes back unchanged. Call it on every mono call after transcription."""
    if voices.n_voices < 2 or not _weak(choice, options):
        return transcript, choice
    texts = ["".join(u.text for u in transcript.utterances if u.speaker == s) for s in SIDES]
    agent_hits, customer_hits = phrase_hits(texts, phrases)
    if agent_hits == customer_hits:
        return transcript, choice
    if agent_hits > customer_hits:
        return transcript, replace(choice, decided_by="phrases")
    flipped = replace(choice, agent_voice=1 - choice.agent_voice, decided_by="phrases")
    return swap_speakers(transcript), flipped


# ----------------------------------------------------------------------------- records


def low_confidence(choice: AgentChoice, margin: float | None, options: SpeakerOptions) -> bool:
    """The agent voice of a mono call may be the wrong one: decided by talk share alone, by
    voices tied on the print, or where the customer's voice recurs across the agent's calls
    nearly as much as the agent's (even when service phrases then decided)."""
    if choice.customer_recurs or choice.decided_by == "talk_share":
        return True
    return margin is not None and margin < options.print_margin


def attribution_row(
    call_id: str, voices: CallVoices, choice: AgentChoice, options: SpeakerOptions
) -> SpeakerAttribution:
    """The `speaker_attribution` row of a mono call (after settle_by_phrases)."""
    compared = voices.n_voices == 2 and len(choice.similarity) == 2
    margin = round(choice.margin, 4) if compared else None
    return SpeakerAttribution(
        call_id,
        choice.decided_by,
        margin,
        round(voices.separation, 3),
        choice.print_calls or None,
        low_confidence(choice, margin, options),
    )


def stereo_attribution(call_id: str) -> SpeakerAttribution:
    """The `speaker_attribution` row of a stereo call: its channels name the speakers."""
    return SpeakerAttribution(call_id, "stereo", None, None, None, False)
