"""Stage B, per agent: which voice of each call is the agent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from pipeline.records import Segment
from pipeline.speakers.options import (
    EMBED_DIM,
    AgentChoice,
    AgentVoices,
    CallVoices,
    Decision,
    SpeakerOptions,
    VoicePrint,
    unit,
)

# ----------------------------------------------------------------------------- stage B


def voice_print_from_stereo(
    agent_id: str, agent_embeddings: Sequence[np.ndarray]
) -> VoicePrint | None:
    """The agent's print from the agent channel of stereo calls (`embed_speech` per call)."""
    vecs = [e for e in agent_embeddings if e is not None and np.linalg.norm(e) > 0]
    if not vecs:
        return None
    return VoicePrint(agent_id, unit(np.mean(vecs, axis=0)), len(vecs), "stereo")


def phrase_hits(texts_by_voice: Sequence[str], phrases: Sequence[str]) -> tuple[int, ...]:
    """Service phrases heard on each voice (their transcripts joined): the tie-breaker's input.
    `phrases`: pipeline.mono.service_phrases (the [lexicon] lists [speakers] names)."""
    return tuple(sum(t.count(p) for p in phrases) for t in texts_by_voice)


def _choose(
    call: CallVoices,
    ref: np.ndarray,
    options: SpeakerOptions,
    decided_by: Decision,
    hits: tuple[int, ...] | None,
    print_calls: int,
) -> AgentChoice:
    if call.n_voices < 2:
        sim = tuple(float(c @ ref) for c in call.centroids)
        return AgentChoice(call.call_id, 0, sim, 0.0, "single_voice", print_calls)
    sim = (float(call.centroids[0] @ ref), float(call.centroids[1] @ ref))
    agent = int(sim[1] > sim[0])
    margin = abs(sim[0] - sim[1])
    if margin < options.print_margin and hits is not None and hits[0] != hits[1]:
        agent, decided_by = int(hits[1] > hits[0]), "phrases"
    return AgentChoice(call.call_id, agent, sim, margin, decided_by, print_calls)


def _recurrence_print(
    calls: Sequence[CallVoices], voice_print: VoicePrint | None
) -> np.ndarray | None:
    """The voice that recurs across an agent's calls, as a mean embedding (one vote per call).

    Each of the agent's calls is one vote: a mono call votes with one of its voices, the stereo
    calls behind `voice_print` with their agent channel (the print counts `n_calls` times).
    Start in each mono call from the voice that best matches the other calls (the sum over the
    other calls of its best cosine to their voices, plus n_calls x its cosine to the print):
    the agent is in every call, a given customer in one. Then alternate 'in each call pick the
    voice closest to the print' / 'print = mean of all votes' until stable.
    """
    usable = [c for c in calls if c.n_voices >= 1]
    n_stereo = voice_print.n_calls if voice_print is not None else 0
    if len(usable) + n_stereo < 2 or not usable:
        return unit(voice_print.embedding) if voice_print is not None and n_stereo else None
    stereo = unit(voice_print.embedding) if voice_print is not None else np.zeros(EMBED_DIM)
    picks = []
    for i, c in enumerate(usable):
        others = [o.centroids for j, o in enumerate(usable) if j != i]
        scores = [
            sum(float((o @ v).max()) for o in others) + n_stereo * float(v @ stereo)
            for v in c.centroids
        ]
        picks.append(c.centroids[int(np.argmax(scores))])
    ref = unit(np.sum(picks, axis=0) + n_stereo * stereo)
    for _ in range(50):
        picks = [c.centroids[int(np.argmax(c.centroids @ ref))] for c in usable]
        new = unit(np.sum(picks, axis=0) + n_stereo * stereo)
        if np.allclose(new, ref, atol=1e-6):
            break
        ref = new
    return ref


def recurrence(voice: np.ndarray, others: Sequence[CallVoices]) -> float:
    """How much a voice recurs in the agent's other calls: the mean over them of its best cosine
    to their voices (0 with no other call)."""
    best = [float((o.centroids @ voice).max()) for o in others if o.n_voices >= 1]
    return float(np.mean(best)) if best else 0.0


def _customer_recurs(
    call: CallVoices, calls: Sequence[CallVoices], choice: AgentChoice, options: SpeakerOptions
) -> bool:
    """Both voices of a call recur across the agent's calls (the customer's within
    `recur_margin` of the agent's): recurrence cannot tell which one is the agent."""
    others = [o for o in calls if o.call_id != call.call_id]
    if call.n_voices < 2 or not others:
        return False
    agent = recurrence(call.centroids[choice.agent_voice], others)
    customer = recurrence(call.centroids[1 - choice.agent_voice], others)
    return customer >= agent - options.recur_margin


def choose_agent_voices(
    agent_id: str,
    calls: Sequence[CallVoices],
    options: SpeakerOptions,
    voice_print: VoicePrint | None = None,
    phrase_counts: Mapping[str, tuple[int, ...]] | None = None,
) -> AgentVoices:
    """Stage B, per agent: which voice of each of the agent's mono calls is the agent.

    Pass all of the agent's mono calls of the chunk together: the agent is the voice that
    recurs across them. `voice_print` (from the agent's stereo calls, `voice_print_from_stereo`,
    or a recurrence print kept from earlier calls) seeds and anchors that search, counting as
    `n_calls` votes; without one it needs two or more calls. `phrase_counts`
    (call_id -> `phrase_hits` per voice) decide only where the two voices' similarities to the
    print differ by less than `options.print_margin`, and alone where there is neither a print
    nor a second call; failing all, the voice that talks more is the agent ("talk_share").
    Who speaks first plays no part.
    """
    phrase_counts = phrase_counts or {}
    ref = _recurrence_print(calls, voice_print)
    stereo = voice_print is not None and voice_print.source == "stereo"
    decided_by: Decision = "voice_print" if stereo else "recurrence"
    behind = sum(c.n_voices >= 1 for c in calls) + (voice_print.n_calls if voice_print else 0)
    used = None
    if ref is not None:  # the reference compared with; "stereo": anchored by a stereo print
        used = VoicePrint(agent_id, ref, behind, "stereo" if stereo else "recurrence")
    choices: dict[str, AgentChoice] = {}
    for c in calls:
        hits = phrase_counts.get(c.call_id)
        if ref is not None:
            choice = _choose(c, ref, options, decided_by, hits, behind)
            if decided_by == "recurrence" and _customer_recurs(c, calls, choice, options):
                choice = replace(choice, customer_recurs=True)
            choices[c.call_id] = choice
        elif c.n_voices < 2:
            choices[c.call_id] = AgentChoice(c.call_id, 0, (), 0.0, "single_voice")
        elif hits is not None and hits[0] != hits[1]:
            choices[c.call_id] = AgentChoice(c.call_id, int(hits[1] > hits[0]), (), 0.0, "phrases")
        else:
            agent = int(c.speech_s[1] > c.speech_s[0])
            choices[c.call_id] = AgentChoice(c.call_id, agent, (), 0.0, "talk_share")
    return AgentVoices(used, choices)


def attribute(call: CallVoices, choice: AgentChoice) -> list[Segment]:
    """The call's speech as agent / customer segments, sorted by start time."""
    return [
        Segment(t.start_s, t.end_s, "agent" if t.voice == choice.agent_voice else "customer")
        for t in call.turns
    ]
