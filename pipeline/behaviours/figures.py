"""Per-call service-behaviour figures, from a call's utterances in order.

Counts are of agent utterances (one per behaviour at most: see detect.detect_turn). Each
two-sided behaviour also gets a share, the good side over both sides, which is what a QA lead
reads ("of the times this agent said no, how often with an alternative"); a share is None when
neither side occurred, so a call without refusals is not scored 0 or 1. Empathy is a rate over
the occasions for it: agent utterances answering a complaint. Talking down, a veto item, is a
count and a rate per agent minute, so long calls are not penalised for their length alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.behaviours.detect import Hit, contexts, detect_turn, turns
from pipeline.behaviours.spec import BehaviourSpec


@dataclass(frozen=True)
class Spoken:
    """What the figures need of an utterance (pipeline.records.Utterance or a stored row)."""

    utterance_id: int
    speaker: str  # agent | customer
    text: str
    duration_s: float


@dataclass(frozen=True)
class UtteranceBehaviour:
    """One agent utterance that showed a behaviour: the evidence a flag points at."""

    utterance_id: int
    behaviour: str
    kind: str
    words: str  # the words that fired


@dataclass(frozen=True)
class CallBehaviours:
    complaint_turns: int  # agent utterances answering a customer complaint
    empathy_count: int  # of those, how many acknowledged it
    empathy_rate: float | None  # empathy_count / complaint_turns
    owns_count: int
    passes_back_count: int
    ownership_share: float | None  # owns / (owns + passes_back)
    positive_no_count: int
    negative_refusal_count: int
    positive_no_share: float | None  # positive / (positive + negative)
    correction_turns: int  # agent utterances answering a customer's correction
    admits_count: int
    argues_count: int
    admits_share: float | None  # admits / (admits + argues)
    talking_down_count: int
    talking_down_per_min: float | None  # per minute of agent speech


def _share(good: int, bad: int) -> float | None:
    return good / (good + bad) if good + bad else None


def detect_call(spec: BehaviourSpec, utterances: Sequence[Spoken]) -> list[UtteranceBehaviour]:
    out = []
    for turn in turns((u.utterance_id, u.speaker, u.text) for u in utterances):
        hits: tuple[Hit, ...] = detect_turn(spec, turn.customer, turn.agent)
        out += [UtteranceBehaviour(turn.utterance_id, h.behaviour, h.kind, h.words) for h in hits]
    return out


def call_behaviours(
    spec: BehaviourSpec, utterances: Sequence[Spoken], hits: Sequence[UtteranceBehaviour]
) -> CallBehaviours:
    """The call's figures from its utterances and the hits `detect_call` found in them."""

    def n(kind: str) -> int:
        return sum(h.kind == kind for h in hits)

    agent_turns = turns((u.utterance_id, u.speaker, u.text) for u in utterances)
    where = [contexts(spec, t.customer) for t in agent_turns]
    complaint_turns = sum("complaint" in c for c in where)
    agent_s = sum(u.duration_s for u in utterances if u.speaker == "agent")
    talking_down = n("talking_down")
    return CallBehaviours(
        complaint_turns=complaint_turns,
        empathy_count=n("empathy"),
        empathy_rate=n("empathy") / complaint_turns if complaint_turns else None,
        owns_count=n("owns"),
        passes_back_count=n("passes_back"),
        ownership_share=_share(n("owns"), n("passes_back")),
        positive_no_count=n("positive_alternative"),
        negative_refusal_count=n("negative_refusal"),
        positive_no_share=_share(n("positive_alternative"), n("negative_refusal")),
        correction_turns=sum("correction" in c for c in where),
        admits_count=n("admits"),
        argues_count=n("argues"),
        admits_share=_share(n("admits"), n("argues")),
        talking_down_count=talking_down,
        talking_down_per_min=talking_down / (agent_s / 60) if agent_s > 0 else None,
    )
