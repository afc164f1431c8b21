"""The DuckDB file analysts query (DESIGN section 2).

Base tables are written per call and keyed by call_id (a re-run replaces a call's rows):
  call_log, utterance_log, call_figures
Derived tables are recomputed from the whole history on every run:
  call_derived, utterance_derived, agent_baselines, agent_drift, call_pairs, aligned_utterances
Run bookkeeping: runs, failures.
Analyst-facing views join them: calls, utterances, call_metrics (documented in README.md).
All writes go through pandas frames (DuckDB's Arrow/pandas scan), never row by row.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.records import CallFigures, Failure, UtteranceFigures


class StoreLockedError(RuntimeError):
    """Another process holds the database (DuckDB allows one writer, or many readers)."""


def _sql_type(annotation: str) -> str:
    base = annotation.replace(" | None", "").strip()
    return {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN", "str": "VARCHAR"}[base]


def _columns(cls: type, skip: tuple[str, ...] = ()) -> str:
    return ",\n  ".join(f"{f.name} {_sql_type(str(f.type))}" for f in fields(cls) if f.name not in skip)


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
  run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP, finished_at TIMESTAMP, folder VARCHAR,
  n_inputs BIGINT, n_ok BIGINT, n_failed BIGINT, n_skipped BIGINT,
  asr_model VARCHAR, device VARCHAR, versions VARCHAR, status VARCHAR
);
CREATE TABLE IF NOT EXISTS failures (
  run_id VARCHAR, stage VARCHAR, call_id VARCHAR, path VARCHAR, manifest_line BIGINT,
  reason VARCHAR, failed_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS call_log (
  call_id VARCHAR PRIMARY KEY, agent_id VARCHAR, recorded_at TIMESTAMP, agent_hired_at DATE,
  topic VARCHAR, channels VARCHAR, folder VARCHAR, path VARCHAR, audio_sha256 VARCHAR, duration_s DOUBLE,
  status VARCHAR, error VARCHAR, run_id VARCHAR, processed_at TIMESTAMP, attributes VARCHAR
);
CREATE TABLE IF NOT EXISTS utterance_log (
  call_id VARCHAR, utterance_id BIGINT, speaker VARCHAR, start_s DOUBLE, end_s DOUBLE,
  text VARCHAR, avg_logprob DOUBLE, no_speech_prob DOUBLE, compression_ratio DOUBLE,
  {_columns(UtteranceFigures, skip=("call_id", "utterance_id"))},
  PRIMARY KEY (call_id, utterance_id)
);
CREATE TABLE IF NOT EXISTS call_figures (
  {_columns(CallFigures)},
  PRIMARY KEY (call_id)
);
CREATE TABLE IF NOT EXISTS call_derived (
  call_id VARCHAR PRIMARY KEY, tenure_days BIGINT, cohort VARCHAR, agitation DOUBLE,
  agitation_high_share DOUBLE, agent_pitch_vs_baseline_st DOUBLE
);
CREATE TABLE IF NOT EXISTS utterance_derived (
  call_id VARCHAR, utterance_id BIGINT, pitch_vs_baseline_st DOUBLE, agitation DOUBLE,
  PRIMARY KEY (call_id, utterance_id)
);
CREATE TABLE IF NOT EXISTS agent_baselines (
  agent_id VARCHAR PRIMARY KEY, baseline_source VARCHAR, baseline_pitch_hz DOUBLE,
  pitch_st_mean DOUBLE, pitch_st_std DOUBLE, pitch_range_st_mean DOUBLE, pitch_range_st_std DOUBLE,
  loudness_dbfs_mean DOUBLE, loudness_dbfs_std DOUBLE, speech_rate_cpm_mean DOUBLE,
  speech_rate_cpm_std DOUBLE
);
CREATE TABLE IF NOT EXISTS agent_drift (
  agent_id VARCHAR, metric VARCHAR, early_mean DOUBLE, current_mean DOUBLE, delta DOUBLE,
  n_early BIGINT, n_current BIGINT, effect_size DOUBLE, PRIMARY KEY (agent_id, metric)
);
CREATE TABLE IF NOT EXISTS call_pairs (
  pair_id VARCHAR PRIMARY KEY, agent_id VARCHAR, early_call_id VARCHAR, current_call_id VARCHAR,
  topic VARCHAR, similarity DOUBLE
);
CREATE TABLE IF NOT EXISTS aligned_utterances (
  pair_id VARCHAR, agent_id VARCHAR, early_call_id VARCHAR, current_call_id VARCHAR,
  early_utterance_id BIGINT, current_utterance_id BIGINT, similarity DOUBLE,
  early_customer_text VARCHAR, early_text VARCHAR, current_customer_text VARCHAR, current_text VARCHAR,
  early_start_s DOUBLE, early_end_s DOUBLE, current_start_s DOUBLE, current_end_s DOUBLE,
  delta_speech_rate_cpm DOUBLE, delta_pitch_vs_baseline_st DOUBLE, delta_loudness_db DOUBLE,
  delta_agitation DOUBLE, PRIMARY KEY (pair_id, early_utterance_id)
);

CREATE OR REPLACE VIEW calls AS
SELECT l.call_id, l.agent_id, l.recorded_at, l.agent_hired_at, d.tenure_days, d.cohort, l.topic,
       l.channels, l.duration_s, l.status, l.error, l.folder, l.path, l.audio_sha256, l.attributes,
       l.run_id, l.processed_at
FROM call_log l LEFT JOIN call_derived d USING (call_id);

CREATE OR REPLACE VIEW utterances AS
SELECT u.*, d.pitch_vs_baseline_st, d.agitation
FROM utterance_log u LEFT JOIN utterance_derived d USING (call_id, utterance_id);

CREATE OR REPLACE VIEW call_metrics AS
SELECT l.agent_id, d.cohort, d.tenure_days, f.*, d.agitation, d.agitation_high_share,
       d.agent_pitch_vs_baseline_st
FROM call_figures f JOIN call_log l USING (call_id) LEFT JOIN call_derived d USING (call_id)
WHERE l.status = 'ok';
"""

DERIVED_TABLES = ("call_derived", "utterance_derived", "agent_baselines", "agent_drift",
                  "call_pairs", "aligned_utterances")


def connect(db: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the database (creating the schema when writable), with a clear error on locks."""
    db = Path(db)
    if read_only and not db.exists():
        raise FileNotFoundError(f"no database at {db}: run `callreview run` first")
    try:
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise StoreLockedError(
                f"{db} is in use by another process (DuckDB allows one writer or several "
                f"read-only readers, not both). Close other sessions on it and retry.\n{e}"
            ) from e
        raise
    if not read_only:
        con.execute(SCHEMA)
    return con


def write_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame,
                key: str | None = None) -> None:
    """Insert a frame by column name; rows with the same `key` values are replaced first."""
    if frame.empty:
        return
    con.register("_frame", frame)
    try:
        if key:
            con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT DISTINCT {key} FROM _frame)")
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _frame")
    finally:
        con.unregister("_frame")


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    con.execute(f"DELETE FROM {table}")
    write_frame(con, table, frame)


def write_failures(con: duckdb.DuckDBPyConnection, run_id: str, failures: list[Failure]) -> None:
    frame = pd.DataFrame(
        [{"run_id": run_id, "stage": f.stage, "call_id": f.call_id, "path": f.path,
          "manifest_line": f.row, "reason": f.reason, "failed_at": pd.Timestamp.now()} for f in failures]
    )
    write_frame(con, "failures", frame)


def done_calls(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """call_id -> audio hash of calls already processed ok: re-runs skip them."""
    rows = con.execute("SELECT call_id, audio_sha256 FROM call_log WHERE status = 'ok'").fetchall()
    return dict(rows)


def to_json(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
