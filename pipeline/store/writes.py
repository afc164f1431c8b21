"""Everything a run writes: run bookkeeping, per-call saves, failures, the derived tables."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import duckdb
import pandas as pd

from pipeline.records import CallInput, CallResult, CallRow, Failure, FailureRow, RunRow
from pipeline.store.db import replace_table, to_json, transaction, write_frame
from pipeline.store.schema import DERIVED_TABLES


def start_run(con: duckdb.DuckDBPyConnection, run: RunRow) -> None:
    write_frame(con, "runs", pd.DataFrame([asdict(run)]), replace_key="run_id")


def finish_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    n_ok: int,
    n_failed: int,
    n_skipped: int,
    status: str,
) -> None:
    con.execute(
        "UPDATE runs SET finished_at = ?, n_ok = ?, n_failed = ?, n_skipped = ?, "
        "status = ? WHERE run_id = ?",
        [datetime.now(), n_ok, n_failed, n_skipped, status, run_id],
    )


def _call_row(
    call: CallInput,
    run_id: str,
    status: str,
    error: str | None = None,
    result: CallResult | None = None,
) -> CallRow:
    return CallRow(
        call_id=call.call_id,
        agent_id=call.agent_id,
        recorded_at=call.recorded_at,
        agent_hired_at=call.agent_hired_at,
        topic=call.topic,
        channels=result.layout if result else call.channels,
        folder=call.folder,
        path=call.rel_path,
        audio_sha256=result.sha256 if result else None,
        duration_s=result.duration_s if result else None,
        status=status,
        error=error,
        run_id=run_id,
        processed_at=datetime.now(),
        attributes=to_json(call.attributes),
    )


def save_call(con: duckdb.DuckDBPyConnection, result: CallResult, run_id: str) -> None:
    """Replace this call's rows in the base tables, in one transaction."""
    utt = pd.DataFrame([asdict(u) for u in result.utterances])
    fig = pd.DataFrame([asdict(f) for f in result.figures])
    rows = utt.merge(fig, on=["call_id", "utterance_id"]) if len(utt) else utt
    call_row = pd.DataFrame([asdict(_call_row(result.call, run_id, "ok", result=result))])
    with transaction(con):
        con.execute("DELETE FROM utterance_log WHERE call_id = ?", [result.call.call_id])
        write_frame(con, "utterance_log", rows)
        write_frame(
            con, "call_figures", pd.DataFrame([asdict(result.call_figures)]), replace_key="call_id"
        )
        write_frame(con, "call_log", call_row, replace_key="call_id")


def save_failed_call(
    con: duckdb.DuckDBPyConnection, call: CallInput, run_id: str, error: str
) -> None:
    """A call that failed keeps a `calls` row with status 'failed' and its reason."""
    row = _call_row(call, run_id, "failed", error)
    write_frame(con, "call_log", pd.DataFrame([asdict(row)]), replace_key="call_id")


def write_failures(con: duckdb.DuckDBPyConnection, run_id: str, failures: list[Failure]) -> None:
    now = datetime.now()
    rows = [
        asdict(FailureRow(run_id, f.stage, f.call_id, f.path, f.row, f.reason, now))
        for f in failures
    ]
    write_frame(con, "failures", pd.DataFrame(rows))


def replace_derived(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame]) -> None:
    """Swap in freshly computed derived tables, all in one transaction."""
    unknown = set(frames) - set(DERIVED_TABLES)
    if unknown:
        raise ValueError(f"not derived tables: {sorted(unknown)}")
    with transaction(con):
        for table, frame in frames.items():
            replace_table(con, table, frame)
