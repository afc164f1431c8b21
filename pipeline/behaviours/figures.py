"""Per-call service-behaviour figures, from a call's utterances in order.

Counts are of agent utterances (one per behaviour at most: see detect.detect_turn). Each
two-sided behaviour also gets a share, the good side over both sides, which is what a QA lead
reads ("of the times this agent said no, how often with an alternative"); a share is None when
neither side occurred, so a call without refusals is not scored 0 or 1. Empathy is a rate over
the occasions for it: agent utterances answering a complaint. Talking down, a veto item, is a
count and a rate per minute of agent speech, so long calls are not penalised for their length alone.
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
    customer_complaint_turns: int  # customer turns with a complaint the agent answered
    agent_empathy_count: int  # of those, how many the agent's reply acknowledged
    agent_empathy_rate: float | None  # empathy_count / complaint_turns
    agent_owns_count: int
    agent_passes_back_count: int
    agent_ownership_share: float | None  # owns / (owns + passes_back)
    agent_positive_no_count: int
    agent_negative_refusal_count: int
    agent_positive_no_share: float | None  # positive / (positive + negative)
    customer_correction_turns: int  # customer turns correcting the agent, answered
    agent_admits_count: int
    agent_argues_count: int
    agent_admits_share: float | None  # admits / (admits + argues)
    agent_talking_down_count: int
    agent_talking_down_per_min: float | None  # per minute of agent speech


def _share(good: int, bad: int) -> float | None:
    return good / (good + bad) if good + bad else None


def detect_call(
    spec: BehaviourSpec,
    utterances: Sequence[Spoken],
    where: dict[str, frozenset[str]] | None = None,
) -> list[UtteranceBehaviour]:
    """`where`: customer speech -> its contexts, filled as they are judged; pass the same dict
    to call_behaviours. Consecutive agent utterances answer the same customer speech, and the
    figures read the same contexts again: judging them once was a third of a night's detection."""
    out = []
    where = {} if where is None else where
    for turn in turns((u.utterance_id, u.speaker, u.text) for u in utterances):
        if turn.customer not in where:
            where[turn.customer] = contexts(spec, turn.customer)
        hits: tuple[Hit, ...] = detect_turn(spec, turn.customer, turn.agent, where[turn.customer])
        out += [UtteranceBehaviour(turn.utterance_id, h.behaviour, h.kind, h.words) for h in hits]
    return out


def call_behaviours(
    spec: BehaviourSpec,
    utterances: Sequence[Spoken],
    hits: Sequence[UtteranceBehaviour],
    judged: dict[str, frozenset[str]] | None = None,
) -> CallBehaviours:
    """The call's figures from its utterances and the hits `detect_call` found in them
    (`judged`: the contexts detect_call judged, reused)."""
    judged = {} if judged is None else judged

    def n(kind: str) -> int:
        return sum(h.kind == kind for h in hits)

    # Occasions are customer turns, not agent utterances: a reply cut into three utterances is
    # one answer, and acknowledging a complaint once in it is enough.
    agent_turns = turns((u.utterance_id, u.speaker, u.text) for u in utterances)
    first = {t.answers: t.customer for t in agent_turns if t.answers >= 0}  # one per occasion
    for text in first.values():
        if text not in judged:
            judged[text] = contexts(spec, text)
    where = {k: judged[text] for k, text in first.items()}
    answered = {t.utterance_id: t.answers for t in agent_turns}
    complaints = {k for k, c in where.items() if "complaint" in c}
    empathic = {answered[h.utterance_id] for h in hits if h.kind == "empathy"}
    agent_s = sum(u.duration_s for u in utterances if u.speaker == "agent")
    talking_down = n("talking_down")
    return CallBehaviours(
        customer_complaint_turns=len(complaints),
        agent_empathy_count=len(empathic & complaints),
        agent_empathy_rate=len(empathic & complaints) / len(complaints) if complaints else None,
        agent_owns_count=n("owns"),
        agent_passes_back_count=n("passes_back"),
        agent_ownership_share=_share(n("owns"), n("passes_back")),
        agent_positive_no_count=n("positive_alternative"),
        agent_negative_refusal_count=n("negative_refusal"),
        agent_positive_no_share=_share(n("positive_alternative"), n("negative_refusal")),
        customer_correction_turns=sum("correction" in c for c in where.values()),
        agent_admits_count=n("admits"),
        agent_argues_count=n("argues"),
        agent_admits_share=_share(n("admits"), n("argues")),
        agent_talking_down_count=talking_down,
        agent_talking_down_per_min=talking_down / (agent_s / 60) if agent_s > 0 else None,
    )
