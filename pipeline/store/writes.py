"""Everything a run writes: run bookkeeping, per-call saves, failures, the derived tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime

import duckdb
import pandas as pd

from pipeline.intake import FileLook
from pipeline.records import (
    TRANSCRIPT_VERSION,
    CallInput,
    CallResult,
    CallTextWork,
    Failure,
    KnownFields,
)
from pipeline.redact import MASKER_VERSION
from pipeline.rows import CallRow, FailureRow, RunRow
from pipeline.speakers.options import VoicePrint
from pipeline.store.db import (
    replace_table,
    to_json,
    transaction,
    update_from_frame,
    write_changed,
    write_frame,
)
from pipeline.store.schema import DERIVED_TABLES, TABLE
from pipeline.store.voices import write_attributions, write_voice_prints


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


def _write_calls(
    con: duckdb.DuckDBPyConnection,
    results: Sequence[CallResult],
    run_id: str,
    pipeline_version: str | None,
    asr_model: str | None,
) -> None:
    """Replace these calls' rows in the base tables (inside the caller's transaction)."""
    if not results:
        return
    ids = [r.call.call_id for r in results]
    utt = pd.DataFrame([asdict(u) for r in results for u in r.utterances])
    fig = pd.DataFrame([asdict(f) for r in results for f in r.figures])
    rows = utt.merge(fig, on=["call_id", "utterance_id"]) if len(utt) else utt
    call_rows = [
        replace(
            _call_row(r.call.call_id, r.call, r.call.rel_path, run_id, "ok", result=r),
            pipeline_version=pipeline_version,
            asr_model=asr_model,
            file_size=r.look.size if r.look else None,
            file_mtime_ns=r.look.mtime_ns if r.look else None,
            masker_version=MASKER_VERSION,
            transcript_version=TRANSCRIPT_VERSION,
        )
        for r in results
    ]
    for table in ("utterance_log", "pii_spans"):
        con.execute(f"DELETE FROM {table} WHERE call_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    write_frame(con, "utterance_log", rows)
    write_frame(con, "pii_spans", pd.DataFrame([asdict(s) for r in results for s in r.pii]))
    write_frame(
        con,
        "call_figures",
        pd.DataFrame([asdict(r.call_figures) for r in results]),
        replace_key="call_id",
    )
    write_frame(
        con, "call_log", pd.DataFrame([asdict(r) for r in call_rows]), replace_key="call_id"
    )
    write_attributions(con, [r.attribution for r in results if r.attribution is not None])
    save_text_work(con, ids, {r.call.call_id: r.text_work for r in results if r.text_work})


def save_text_work(
    con: duckdb.DuckDBPyConnection, call_ids: Sequence[str], works: Mapping[str, CallTextWork]
) -> None:
    """The work on these calls' own text done where they were measured (records.CallTextWork):
    their call_words row, their call_behaviours row (reciting left null: the derive stage fills
    it) and utterance_behaviours rows; rows from an earlier processing of them go first. The
    derive stage keeps them (store.load_history)."""
    for table in ("call_words", "call_behaviours", "utterance_behaviours"):
        con.execute(
            f"DELETE FROM {table} WHERE call_id IN (SELECT unnest(?::VARCHAR[]))", [list(call_ids)]
        )
    write_frame(
        con,
        "call_words",
        pd.DataFrame(
            {"call_id": list(works), "words": [w.words for w in works.values()]},
            columns=["call_id", "words"],
        ),
    )
    detected = {c: w for c, w in works.items() if w.behaviours is not None}
    write_frame(
        con,
        "call_behaviours",
        pd.DataFrame([{"call_id": c, **asdict(w.behaviours)} for c, w in detected.items()]),
    )
    write_frame(
        con,
        "utterance_behaviours",
        pd.DataFrame([{"call_id": c, **asdict(h)} for c, w in detected.items() for h in w.hits]),
    )


def _write_failed_calls(
    con: duckdb.DuckDBPyConnection, failed: Sequence[tuple[CallInput, str]], run_id: str
) -> None:
    """Calls that failed keep a `calls` row with status 'failed' and their reason."""
    rows = [asdict(_call_row(c.call_id, c, c.rel_path, run_id, "failed", e)) for c, e in failed]
    write_frame(con, "call_log", pd.DataFrame(rows), replace_key="call_id")


def save_call(
    con: duckdb.DuckDBPyConnection,
    result: CallResult,
    run_id: str,
    pipeline_version: str | None = None,
    asr_model: str | None = None,
) -> None:
    """Replace one call's rows in the base tables, in one transaction; the call's row records
    the pipeline and model versions that produced them."""
    with transaction(con):
        _write_calls(con, [result], run_id, pipeline_version, asr_model)


def save_failed_call(
    con: duckdb.DuckDBPyConnection, call: CallInput, run_id: str, error: str
) -> None:
    _write_failed_calls(con, [(call, error)], run_id)


def save_chunk(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    results: Sequence[CallResult],
    failed: Sequence[tuple[CallInput, str]],
    failures: Sequence[Failure],
    prints: Mapping[str, VoicePrint] | None = None,
    pipeline_version: str | None = None,
    asr_model: str | None = None,
    looks: Mapping[str, FileLook] | None = None,
) -> None:
    """Everything one chunk of a run produced, in one transaction: its processed calls (with how
    their speech was attributed), its failed calls, its failures (manifest rows and processing
    errors), the voice prints it refreshed, and the new size and mtime of stored calls whose
    files were touched but hold the same audio. A crash before the commit leaves the chunk wholly
    unstored, so a re-run redoes exactly that chunk."""
    with transaction(con):
        _write_calls(con, results, run_id, pipeline_version, asr_model)
        _write_failed_calls(con, failed, run_id)
        _write_failures(con, run_id, failures)
        write_voice_prints(con, prints or {})
        update_looks(con, looks or {})


def update_looks(con: duckdb.DuckDBPyConnection, looks: Mapping[str, FileLook]) -> None:
    """Record the size and mtime of stored calls found unchanged by their hash (a file touched
    or copied again): the next run skips them without reading them."""
    frame = pd.DataFrame(
        [(c, k.size, k.mtime_ns) for c, k in looks.items()],
        columns=["call_id", "file_size", "file_mtime_ns"],
    )
    update_from_frame(con, "call_log", frame, ("call_id",))


# What makes two failures the same one: a re-run that meets it again updates its row.
FAILURE_KEY = ("stage", "call_id", "path", "manifest_line", "reason")


def write_failures(
    con: duckdb.DuckDBPyConnection, run_id: str, failures: Sequence[Failure]
) -> None:
    """Record failed inputs, in one transaction (see _write_failures)."""
    with transaction(con):
        _write_failures(con, run_id, failures)


def _write_failures(
    con: duckdb.DuckDBPyConnection, run_id: str, failures: Sequence[Failure]
) -> None:
    """One row per distinct failure, whose run_id and failed_at move to this run when it is met
    again (a re-run adds no rows).

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


def clear_derived(con: duckdb.DuckDBPyConnection) -> None:
    """Empty every derived table (before a full recompute written one batch of agents at a
    time)."""
    with transaction(con):
        for table in DERIVED_TABLES:
            con.execute(f"DELETE FROM {table}")


def replace_derived(
    con: duckdb.DuckDBPyConnection,
    frames: dict[str, pd.DataFrame],
    agents: Sequence[str] | None = None,
) -> None:
    """Swap in freshly computed derived tables, all in one transaction: whole, or only the rows
    of `agents` (their calls' rows and their own), the other agents' left as they are."""
    unknown = set(frames) - set(DERIVED_TABLES)
    if unknown:
        raise ValueError(f"not derived tables: {sorted(unknown)}")
    with transaction(con):
        for table, frame in frames.items():
            if agents is None:
                replace_table(con, table, frame)
                continue
            columns = {name for name, _ in TABLE[table].columns()}
            mine = (
                "agent_id IN (SELECT unnest($1::VARCHAR[]))"
                if "agent_id" in columns
                else "call_id IN (SELECT call_id FROM call_log "
                "WHERE agent_id IN (SELECT unnest($1::VARCHAR[])))"
            )
            write_changed(con, table, frame, mine, [list(agents)])
