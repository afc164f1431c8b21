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

from collections.abc import Sequence
from dataclasses import dataclass, fields
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
from pipeline.behaviours.spec import BehaviourSpec


@dataclass(frozen=True)
class CallKey:
    call_id: str


# Table records (pipeline/store/schema.py) and the call_metrics columns they add.
CALL_RECORDS = (CallKey, CallBehaviours, Recital)
UTTERANCE_RECORDS = (CallKey, UtteranceBehaviour)
CALL_METRICS = tuple(f.name for cls in (CallBehaviours, Recital) for f in fields(cls))
# The call_behaviours columns that read the call's own text alone (not reciting): a call whose
# text is unchanged keeps them (pipeline/store/history.py, load_history).
KEPT_COLUMNS = tuple(f.name for f in fields(CallBehaviours))


def _columns(records: tuple[type, ...]) -> list[str]:
    return [f.name for cls in records for f in fields(cls)]


def behaviour_tables(
    utts: pd.DataFrame,
    settings: BehaviourSettings | None,
    kept: pd.DataFrame | None = None,
    kept_hits: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """utts: utterance_log rows (call_id, utterance_id, speaker, start_s, end_s, text) with
    agent_id, of every call to score -> {"call_behaviours": ..., "utterance_behaviours": ...}.
    Calls without an agent_id get no row (reciting compares an agent's own calls).

    kept, kept_hits: stored CallBehaviours rows (call_id + KEPT_COLUMNS) and utterance_behaviours
    rows of calls whose text has not changed since they were derived with these settings: their
    detection is taken as stored (it reads the call's own text alone), the rest detected. Reciting
    is always recomputed: it compares the agent's calls, and the night's new calls change it."""
    call_rows: list[dict] = []
    hit_rows: list[dict] = []
    if settings is None:  # a Lexicon built without behaviour settings (tests, notebooks)
        return _frames(call_rows, hit_rows)
    spec = settings.spec
    stored = _kept_figures(kept, kept_hits)
    kb = knowledge_base(
        Path(settings.knowledge_base) if settings.knowledge_base else None,
        settings.recite_exempt,
        settings.recite.n,
    )
    # plain lists, one agent's and then one call's slice at a time: pandas' per-group frames and
    # itertuples cost more than the detection itself on a night's millions of utterances
    ordered = utts[utts["agent_id"].notna()].sort_values(
        ["agent_id", "call_id", "utterance_id"], kind="stable"
    )
    agent_ids = ordered["agent_id"].tolist()
    call_ids = ordered["call_id"].tolist()
    utterance_ids = ordered["utterance_id"].astype(int).tolist()
    speakers = ordered["speaker"].tolist()
    texts = ordered["text"].tolist()
    durations = (ordered["end_s"] - ordered["start_s"]).tolist()
    for first, last in _slices(agent_ids, 0, len(agent_ids)).values():  # one agent at a time
        by_call = _slices(call_ids, first, last)
        agent_texts = {
            c: [
                "" if _missing(texts[i]) else texts[i]
                for i in range(a, b)
                if speakers[i] == "agent"
            ]
            for c, (a, b) in by_call.items()
        }
        recitals = agent_recitals(agent_texts, kb, settings.recite_exempt, settings.recite)
        for call_id, (a, b) in by_call.items():
            spoken = [
                Spoken(utterance_ids[i], str(speakers[i]), texts[i] or "", durations[i])
                for i in range(a, b)
            ]
            if call_id in stored:
                figures, hits = stored[call_id]
            else:
                found_figures, found = call_detection(spec, spoken)
                figures = vars(found_figures)  # flat records: asdict's deep copy costs more
                hits = [{"call_id": call_id, **vars(h)} for h in found]
            call_rows.append({"call_id": call_id, **figures, **vars(recitals[call_id])})
            hit_rows += hits
    return _frames(call_rows, hit_rows)


def call_detection(
    spec: BehaviourSpec, spoken: Sequence[Spoken]
) -> tuple[CallBehaviours, tuple[UtteranceBehaviour, ...]]:
    """One call's detection (its utterances in order): the figures and the hits behind them."""
    judged: dict[str, frozenset[str]] = {}
    found = detect_call(spec, spoken, judged)
    return call_behaviours(spec, spoken, found, judged), tuple(found)


def _kept_figures(
    kept: pd.DataFrame | None, kept_hits: pd.DataFrame | None
) -> dict[str, tuple[dict[str, object], list[dict[str, object]]]]:
    """call_id -> (CallBehaviours fields, utterance_behaviours rows) as detection makes them:
    counts as int, a missing share as None (DuckDB gives NaN)."""
    if kept is None or kept.empty:
        return {}
    ints = {f.name for f in fields(CallBehaviours) if f.type == "int"}
    hits: dict[str, list[dict[str, object]]] = {}
    if kept_hits is not None:
        for row in kept_hits[_columns(UTTERANCE_RECORDS)].to_dict("records"):
            row["utterance_id"] = int(row["utterance_id"])
            hits.setdefault(str(row["call_id"]), []).append(row)
    out = {}
    for row in kept[["call_id", *KEPT_COLUMNS]].to_dict("records"):
        figures = {
            k: None if pd.isna(row[k]) else int(row[k]) if k in ints else float(row[k])
            for k in KEPT_COLUMNS
        }
        out[str(row["call_id"])] = (figures, hits.get(str(row["call_id"]), []))
    return out


def _slices(keys: list[str], first: int, last: int) -> dict[str, tuple[int, int]]:
    """key -> (first, last) of each run of equal consecutive keys in keys[first:last]."""
    out, start = {}, first
    for i in range(first + 1, last + 1):
        if i == last or keys[i] != keys[start]:
            out[keys[start]] = (start, i)
            start = i
    return out


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # None or NaN


def _frames(call_rows: list[dict], hit_rows: list[dict]) -> dict[str, pd.DataFrame]:
    return {
        "call_behaviours": pd.DataFrame(call_rows, columns=_columns(CALL_RECORDS)),
        "utterance_behaviours": pd.DataFrame(hit_rows, columns=_columns(UTTERANCE_RECORDS)),
    }
