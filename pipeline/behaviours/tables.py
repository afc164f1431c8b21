"""The service-behaviour tables of the derive stage, from stored text alone.

Computed from utterance_log with the other derived tables, for the agents a run recomputes, so
calls stored before these figures existed get them on the next run without re-transcription
(the patterns are part of the settings fingerprint: a new or edited pattern file recomputes
every agent, as an edited rule threshold does). Reciting needs the agent's other calls anyway.

  call_behaviours       one row per ok call: CallBehaviours and Recital figures
  utterance_behaviours  one row per agent utterance and behaviour that fired, with the words:
                        the evidence behind the figures and the rule flags
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from pipeline.behaviours.figures import (
    CallBehaviours,
    Spoken,
    UtteranceBehaviour,
    call_behaviours,
    detect_call,
)
from pipeline.behaviours.recite import Recital, agent_recitals, knowledge_base
from pipeline.behaviours.settings import BehaviourSettings


@dataclass(frozen=True)
class CallKey:
    call_id: str


# Table records (pipeline/store/schema.py) and the call_metrics columns they add.
CALL_RECORDS = (CallKey, CallBehaviours, Recital)
UTTERANCE_RECORDS = (CallKey, UtteranceBehaviour)
CALL_METRICS = tuple(f.name for cls in (CallBehaviours, Recital) for f in fields(cls))


def _columns(records: tuple[type, ...]) -> list[str]:
    return [f.name for cls in records for f in fields(cls)]


def behaviour_tables(
    utts: pd.DataFrame, settings: BehaviourSettings | None
) -> dict[str, pd.DataFrame]:
    """utts: utterance_log rows (call_id, utterance_id, speaker, start_s, end_s, text) with
    agent_id, of every call to score -> {"call_behaviours": ..., "utterance_behaviours": ...}.
    Calls without an agent_id get no row (reciting compares an agent's own calls)."""
    call_rows: list[dict] = []
    hit_rows: list[dict] = []
    if settings is None:  # a Lexicon built without behaviour settings (tests, notebooks)
        return _frames(call_rows, hit_rows)
    spec = settings.spec
    kb = knowledge_base(
        Path(settings.knowledge_base) if settings.knowledge_base else None,
        settings.recite_exempt,
        settings.recite.n,
    )
    ordered = utts.sort_values(["call_id", "utterance_id"])
    for _, agent_utts in ordered.groupby("agent_id", sort=True):  # one agent at a time
        by_call = {c: g for c, g in agent_utts.groupby("call_id", sort=True)}
        agent_texts = {
            c: g.loc[g["speaker"] == "agent", "text"].fillna("").tolist()
            for c, g in by_call.items()
        }
        recitals = agent_recitals(agent_texts, kb, settings.recite_exempt, settings.recite)
        for call_id, g in by_call.items():
            spoken = [
                Spoken(int(r.utterance_id), str(r.speaker), r.text or "", r.end_s - r.start_s)
                for r in g.itertuples(index=False)
            ]
            hits = detect_call(spec, spoken)
            figures = call_behaviours(spec, spoken, hits)
            call_rows.append({"call_id": call_id, **asdict(figures), **asdict(recitals[call_id])})
            hit_rows += [{"call_id": call_id, **asdict(h)} for h in hits]
    return _frames(call_rows, hit_rows)


def _frames(call_rows: list[dict], hit_rows: list[dict]) -> dict[str, pd.DataFrame]:
    return {
        "call_behaviours": pd.DataFrame(call_rows, columns=_columns(CALL_RECORDS)),
        "utterance_behaviours": pd.DataFrame(hit_rows, columns=_columns(UTTERANCE_RECORDS)),
    }
