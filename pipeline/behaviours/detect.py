"""Service behaviours in one agent turn, read with the customer turn just before it.

The same words mean different things in different places: 抱歉 after "你搞错了" owns a mistake,
抱歉 after "我查一下订单" is politeness; 我理解 after a complaint is empathy, after a question it
means "I take it you want...". So a pattern may require a context (pipeline/data/behaviours.toml
`after = "complaint"`), which is judged on the customer's speech since the agent last spoke.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.behaviours.match import find
from pipeline.behaviours.spec import BehaviourSpec


@dataclass(frozen=True)
class Hit:
    behaviour: str
    kind: str
    start: int  # character span of the words that fired, in the agent's text
    end: int
    words: str


@dataclass(frozen=True)
class Turn:
    utterance_id: int  # the agent utterance
    customer: str  # the customer's speech just before this agent turn ("" if none)
    agent: str
    answers: int  # which run of customer speech it answers (0, 1, ...; -1: none yet)


def contexts(spec: BehaviourSpec, customer: str) -> frozenset[str]:
    """Which contexts (complaint, correction, request) the customer's turn shows."""
    min_chars = spec.fuzzy_min_chars
    return frozenset(c.name for c in spec.contexts if find(customer, c.matcher, min_chars))


def detect_turn(
    spec: BehaviourSpec, customer: str, agent: str, where: frozenset[str] | None = None
) -> tuple[Hit, ...]:
    """At most one hit per behaviour: the first kind in the behaviour's priority order that
    fires (a refusal followed by an alternative is an alternative; see the file's kinds).
    `where`: contexts(spec, customer), when the caller has it already."""
    if where is None:
        where = contexts(spec, customer)
    fired: dict[tuple[str, str], Hit] = {}
    for p in spec.patterns:
        if (p.behaviour, p.kind) in fired or (p.after is not None and p.after not in where):
            continue
        spans = find(agent, p.matcher, spec.fuzzy_min_chars)
        if spans:
            start, end = spans[0]
            fired[p.behaviour, p.kind] = Hit(p.behaviour, p.kind, start, end, agent[start:end])
    hits = []
    for b in spec.behaviours:
        kind = next((k for k in b.kinds if (b.name, k) in fired), None)
        if kind is not None:
            hits.append(fired[b.name, kind])
    return tuple(hits)


def turns(utterances: Iterable[tuple[int, str, str]]) -> list[Turn]:
    """(utterance_id, speaker, text) in call order -> one Turn per agent utterance.

    The customer context of an agent utterance is the customer's last run of utterances before
    it; consecutive agent utterances share it (the agent's turn was cut into several).
    """
    out: list[Turn] = []
    block: list[str] = []  # the customer's current run
    context = ""
    previous = ""
    answers = -1
    for utterance_id, speaker, text in utterances:
        if speaker == "customer":
            block = block + [text] if previous == "customer" else [text]
        else:
            if previous == "customer":
                context, answers = "".join(block), answers + 1
            out.append(Turn(utterance_id, context, text, answers))
        previous = speaker
    return out
