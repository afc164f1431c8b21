"""Everything a run writes: run bookkeeping, per-call saves, failures, the derived tables."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime

import duckdb
import pandas as pd

from pipeline.records import CallInput, CallResult, Failure, KnownFields
from pipeline.rows import CallRow, FailureRow, RunRow
from pipeline.store.db import replace_table, to_json, transaction, write_frame
from pipeline.store.schema import DERIVED_TABLES


def start_run(con: duckdb.DuckDBPyConnection, run: RunRow) -> None:
    write_frame(con, "runs", pd.DataFrame([asdict(run)]), replace_key="run_id")


def mark_interrupted_runs(con: duckdb.DuckDBPyConnection) -> None:
    """Runs still 'running' when a new run opens the working file died mid-way (it is locked
    while a run is alive)."""
    con.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")


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
    call_id: str,
    about: CallInput | KnownFields,
    path: str,
    run_id: str,
    status: str,
    error: str | None = None,
    result: CallResult | None = None,
    processed_at: datetime | None = None,
) -> CallRow:
    """The call_log row of a call, from its manifest row: whole (CallInput) or, for a rejected
    row, what of it still parsed (KnownFields)."""
    return CallRow(
        call_id=call_id,
        agent_id=about.agent_id,
        recorded_at=about.recorded_at,
        agent_hired_at=about.agent_hired_at,
        topic=about.topic,
        channels=result.layout if result else about.channels,
        folder=about.folder,
        path=path,
        audio_sha256=result.sha256 if result else None,
        duration_s=result.duration_s if result else None,
        status=status,
        error=error,
        run_id=run_id,
        processed_at=processed_at or datetime.now(),
        attributes=to_json(about.attributes),
    )


def save_call(
    con: duckdb.DuckDBPyConnection,
    result: CallResult,
    run_id: str,
    pipeline_version: str | None = None,
    asr_model: str | None = None,
) -> None:
    """Replace this call's rows in the base tables, in one transaction; the call's row records
    the pipeline and model versions that produced them."""
    utt = pd.DataFrame([asdict(u) for u in result.utterances])
    fig = pd.DataFrame([asdict(f) for f in result.figures])
    rows = utt.merge(fig, on=["call_id", "utterance_id"]) if len(utt) else utt
    call = result.call
    row = _call_row(call.call_id, call, call.rel_path, run_id, "ok", result=result)
    row = replace(row, pipeline_version=pipeline_version, asr_model=asr_model)
    call_row = pd.DataFrame([asdict(row)])
    with transaction(con):
        con.execute("DELETE FROM utterance_log WHERE call_id = ?", [result.call.call_id])
        con.execute("DELETE FROM pii_spans WHERE call_id = ?", [result.call.call_id])
        write_frame(con, "utterance_log", rows)
        write_frame(con, "pii_spans", pd.DataFrame([asdict(s) for s in result.pii]))
        write_frame(
            con, "call_figures", pd.DataFrame([asdict(result.call_figures)]), replace_key="call_id"
        )
        write_frame(con, "call_log", call_row, replace_key="call_id")


def save_failed_call(
    con: duckdb.DuckDBPyConnection, call: CallInput, run_id: str, error: str
) -> None:
    """A call that failed keeps a `calls` row with status 'failed' and its reason."""
    row = _call_row(call.call_id, call, call.rel_path, run_id, "failed", error)
    write_frame(con, "call_log", pd.DataFrame([asdict(row)]), replace_key="call_id")


# What makes two failures the same one: a re-run that meets it again updates its row.
FAILURE_KEY = ("stage", "call_id", "path", "manifest_line", "reason")


def write_failures(con: duckdb.DuckDBPyConnection, run_id: str, failures: list[Failure]) -> None:
    """Record failed inputs, in one transaction: one row per distinct failure, whose run_id and
    failed_at move to this run when it is met again (a re-run adds no rows).

    A rejected manifest row whose call_id is its own (Failure.known) also keeps a `calls` row
    with status 'failed' and the reason, unless that call is stored ok: a bad row never
    replaces a good call (docs/CONTRACTS.md, "Input").
    """
    if not failures:
        return
    now = datetime.now()
    rows = pd.DataFrame(
        [
            asdict(FailureRow(run_id, f.stage, f.call_id, f.path, f.row, f.reason, now))
            for f in failures
        ]
    ).drop_duplicates(subset=list(FAILURE_KEY))
    same = " AND ".join(f"f.{c} IS NOT DISTINCT FROM n.{c}" for c in FAILURE_KEY)
    calls = {
        f.call_id: _call_row(
            f.call_id, f.known, f.path or "", run_id, "failed", f.reason, processed_at=now
        )
        for f in failures
        if f.known and f.call_id
    }
    with transaction(con):
        con.register("_new_failures", rows)
        try:
            con.execute(f"DELETE FROM failures f USING _new_failures n WHERE {same}")
        finally:
            con.unregister("_new_failures")
        write_frame(con, "failures", rows)
        if calls:
            ok = con.execute(
                "SELECT call_id FROM call_log WHERE status = 'ok' AND call_id IN "
                "(SELECT unnest(?::VARCHAR[]))",
                [list(calls)],
            ).fetchall()
            keep = [asdict(r) for r in calls.values() if (r.call_id,) not in ok]
            write_frame(con, "call_log", pd.DataFrame(keep), replace_key="call_id")


def replace_derived(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame]) -> None:
    """Swap in freshly computed derived tables, all in one transaction."""
    unknown = set(frames) - set(DERIVED_TABLES)
    if unknown:
        raise ValueError(f"not derived tables: {sorted(unknown)}")
    with transaction(con):
        for table, frame in frames.items():
            replace_table(con, table, frame)
