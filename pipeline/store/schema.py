"""The DuckDB schema, generated from the typed records in pipeline/records.py.

Base tables are written per call and keyed by call_id (a re-run replaces a call's rows):
  call_log, utterance_log, call_figures, speaker_attribution
Voice prints are kept across runs, one row per agent: agent_voice_prints.
Derived tables are recomputed from the whole history on every run:
  call_derived, utterance_derived, agent_baselines, agent_drift, call_pairs, aligned_utterances,
  call_behaviours, utterance_behaviours (service behaviours, from stored text), call_words
Run bookkeeping: runs, failures.
Analyst-facing views join them: calls, utterances, call_metrics (docs/CONTRACTS.md).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, fields
from datetime import date, datetime

from pipeline import records, rows
from pipeline.behaviours import tables as behaviours
from pipeline.coaching.records import CoachingEvent, CoachingResult


@dataclass(frozen=True)
class Table:
    name: str
    records: tuple[type, ...]  # columns of these records, in order, each name once
    key: tuple[str, ...]  # primary key; () for append-only logs
    derived: bool = False  # recomputed from the base tables on every run

    def columns(self) -> list[tuple[str, str]]:
        """(name, SQL type) of every column."""
        out: dict[str, str] = {}
        for cls in self.records:
            hints = typing.get_type_hints(cls)
            for f in fields(cls):
                if f.name not in out:
                    out[f.name] = _sql_type(hints[f.name])
        return list(out.items())

    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns()]


_SQL_TYPES: dict[type, str] = {
    str: "VARCHAR",
    int: "BIGINT",
    float: "DOUBLE",
    bool: "BOOLEAN",
    datetime: "TIMESTAMP",
    date: "DATE",
}


def _sql_type(hint: object) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return _sql_type(args[0])  # X | None: nullable X
    if typing.get_origin(hint) is typing.Literal:
        return "VARCHAR"
    if typing.get_origin(hint) is list:
        return _sql_type(args[0]) + "[]"
    return _SQL_TYPES[hint]  # type: ignore[index]


TABLES: tuple[Table, ...] = (
    Table("runs", (rows.RunRow,), ("run_id",)),
    Table("failures", (rows.FailureRow,), ()),
    Table("call_log", (rows.CallRow,), ("call_id",)),
    Table(
        "utterance_log", (records.Utterance, records.UtteranceFigures), ("call_id", "utterance_id")
    ),
    Table("call_figures", (records.CallFigures,), ("call_id",)),
    Table("pii_spans", (rows.PiiSpan,), ("call_id", "utterance_id", "start_char")),
    Table("speaker_attribution", (rows.SpeakerAttribution,), ("call_id",)),
    Table("agent_voice_prints", (rows.AgentVoicePrint,), ("agent_id",)),  # kept across runs
    Table("call_derived", (rows.CallDerived,), ("call_id",), derived=True),
    Table("utterance_derived", (rows.UtteranceDerived,), ("call_id", "utterance_id"), derived=True),
    Table("agent_baselines", (rows.AgentBaseline,), ("agent_id",), derived=True),
    Table("agent_drift", (rows.AgentDrift,), ("agent_id", "metric"), derived=True),
    Table("call_flags", (rows.CallFlag,), ("call_id", "rule"), derived=True),
    Table("call_behaviours", behaviours.CALL_RECORDS, ("call_id",), derived=True),
    Table(
        "utterance_behaviours",
        behaviours.UTTERANCE_RECORDS,
        ("call_id", "utterance_id", "behaviour"),
        derived=True,
    ),
    Table("agitation_baselines", (rows.AgitationBaseline,), ("agent_id", "feature"), derived=True),
    Table("call_words", (rows.CallWords,), ("call_id",), derived=True),
    Table("call_pairs", (rows.PairRow,), ("pair_id",), derived=True),
    Table(
        "aligned_utterances", (rows.AlignedRow,), ("pair_id", "early_utterance_id"), derived=True
    ),
    # calibration sessions: what evaluators scored, imported from their exported files
    Table(
        "calibration_scores",
        (records.CalibrationScore,),
        (
            "session",
            "evaluator",
            "pair_id",
            "early_utterance_id",
            "current_utterance_id",
            "side",
            "item",
        ),
    ),
    Table("calibration_imports", (records.CalibrationImport,), ("source_sha256",)),
    # coaching: events recorded or taken from sessions; outcomes recomputed after each run
    Table("coaching_events", (CoachingEvent,), ("agent_id", "event_date")),
    Table("coaching_results", (CoachingResult,), ("agent_id", "event_date", "figure")),
)
TABLE = {t.name: t for t in TABLES}
DERIVED_TABLES = tuple(t.name for t in TABLES if t.derived)

VIEWS = """
CREATE OR REPLACE VIEW calls AS
SELECT l.call_id, l.agent_id, l.recorded_at, l.agent_hired_at, d.tenure_days, d.cohort, l.topic,
       l.channels, l.duration_s, l.status, l.error, l.folder, l.path, l.audio_sha256, l.attributes,
       l.run_id, l.processed_at, l.pipeline_version, l.asr_model, l.file_size, l.file_mtime_ns,
       l.masker_version, l.transcript_version
FROM call_log l LEFT JOIN call_derived d USING (call_id);

CREATE OR REPLACE VIEW utterances AS
SELECT u.*, d.pitch_vs_baseline_st, d.agitation
FROM utterance_log u LEFT JOIN utterance_derived d USING (call_id, utterance_id);

CREATE OR REPLACE VIEW call_metrics AS
SELECT l.agent_id, d.cohort, d.tenure_days, f.*, d.agitation, d.agitation_high_share,
       d.agent_pitch_vs_baseline_st, d.customer_agitation, b.* EXCLUDE (call_id)
FROM call_figures f JOIN call_log l USING (call_id) LEFT JOIN call_derived d USING (call_id)
LEFT JOIN call_behaviours b USING (call_id)
WHERE l.status = 'ok';

-- One row per session, scored answer (side) and rubric item: how far the evaluators are apart,
-- next to callreview's own figures of that answer (docs/CONTRACTS.md, "Calibration sessions").
CREATE OR REPLACE VIEW calibration_agreement AS
WITH s AS (
  SELECT session, agent_id, pair_id, early_call_id, early_utterance_id, current_call_id,
         current_utterance_id, side, item, count(*) AS n_evaluators, avg(score) AS mean_score,
         stddev_samp(score) AS sd_score, min(score) AS min_score, max(score) AS max_score,
         max(score) - min(score) AS spread
  FROM calibration_scores WHERE score IS NOT NULL GROUP BY ALL
)
SELECT s.*, u.call_id, u.utterance_id, u.agitation, u.impatience_hits, u.politeness_hits,
       u.confirmation_hits, u.structure_hits, u.speech_rate_cpm, a.delta_agitation,
       a.delta_speech_rate_cpm
FROM s
LEFT JOIN utterances u
  ON u.call_id = CASE s.side WHEN 'early' THEN s.early_call_id
                             WHEN 'current' THEN s.current_call_id END
  AND u.utterance_id = CASE s.side WHEN 'early' THEN s.early_utterance_id
                                   WHEN 'current' THEN s.current_utterance_id END
LEFT JOIN aligned_utterances a
  ON a.pair_id = s.pair_id AND a.early_utterance_id = s.early_utterance_id
  AND a.current_utterance_id = s.current_utterance_id;

-- One row per coaching event and outcome figure (docs/CONTRACTS.md, "Coaching outcomes"); an
-- event whose outcomes are not computed yet has one row with null figure columns.
CREATE OR REPLACE VIEW coaching_outcomes AS
SELECT e.agent_id, e.event_date, e.source, e.session, r.* EXCLUDE (agent_id, event_date)
FROM coaching_events e
LEFT JOIN coaching_results r USING (agent_id, event_date);
"""


def create_table_sql(table: Table) -> str:
    cols = [f"{name} {sql_type}" for name, sql_type in table.columns()]
    if table.key:
        cols.append(f"PRIMARY KEY ({', '.join(table.key)})")
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n  " + ",\n  ".join(cols) + "\n);"


def tables_sql() -> str:
    return "\n".join(create_table_sql(t) for t in TABLES)


def schema_sql() -> str:
    return tables_sql() + "\n" + VIEWS
