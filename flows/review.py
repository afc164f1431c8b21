"""Prefect flow `review_calls`: a folder of recordings -> the DuckDB file.

Tasks are thin wrappers over pipeline/ functions. One bad recording fails its own task; the
flow records it in `failures` (and `calls` with status 'failed') and carries on. Calls whose
audio hash is already stored as ok are skipped, so an interrupted or repeated run resumes.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import pandas as pd  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402

from pipeline import models, review, store  # noqa: E402
from pipeline.audio import file_sha256  # noqa: E402
from pipeline.manifest import read_manifest  # noqa: E402
from pipeline.records import CallInput, CallResult, Failure  # noqa: E402


@dataclass
class RunSummary:
    run_id: str
    db: str
    n_inputs: int
    n_ok: int
    n_skipped: int
    failures: list[Failure] = field(default_factory=list)
    derived_rows: dict[str, int] = field(default_factory=dict)
    top_drift: pd.DataFrame | None = None
    seconds: float = 0.0


@lru_cache(maxsize=2)
def _asr(spec: str | None, device: str | None):  # one model per worker process, not per call
    return models.load_asr_model(spec, device)


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


@task(name="process_call", cache_policy=NO_CACHE, task_run_name="process {call.call_id}")
def process_call_task(call: CallInput, model_spec: str | None, device: str | None,
                      batch_size: int) -> CallResult:
    return review.process_call(call, _asr(model_spec, device), batch_size)


@task(name="rebuild_derived", cache_policy=NO_CACHE)
def rebuild_derived_task(db: str) -> dict[str, int]:
    con = store.connect(db)
    try:
        return review.rebuild_derived(con)
    finally:
        con.close()


@flow(name="review_calls", log_prints=True)
def review_calls(folder: str = "sample_audio", db: str = "callreview.duckdb",
                 model: str | None = None, device: str | None = None, force: bool = False,
                 batch_size: int = 8) -> RunSummary:
    logger = get_run_logger()
    started = time.monotonic()
    run_id = datetime.now().strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    calls, failures = read_manifest(folder)
    n_inputs = len(calls) + len(failures)  # every manifest row, good or bad
    for f in failures:
        logger.warning("manifest line %s skipped: %s", f.row, f.reason)
    model_path = models.resolve_model(model)
    con = store.connect(db)
    con.execute("INSERT INTO runs (run_id, started_at, folder, n_inputs, asr_model, device, versions, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
                [run_id, datetime.now(), str(Path(folder).resolve()), n_inputs,
                 f"{models.model_version(model)} ({model_path})", _device(device),
                 store.to_json(review.versions())])
    done = {} if force else store.done_calls(con)
    n_ok = n_skipped = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        bar = progress.add_task("reviewing calls", total=len(calls))
        for call in calls:
            progress.update(bar, description=f"reviewing {call.call_id}")
            if call.call_id in done and done[call.call_id] == file_sha256(call.path):
                n_skipped += 1
                progress.advance(bar)
                continue
            state = process_call_task(call, model, device, batch_size, return_state=True)
            if state.is_completed():
                result: CallResult = state.result()
                review.save_call(con, result, run_id)
                n_ok += 1
                logger.info("%s: %d utterances, %.0f s", call.call_id, len(result.utterances), result.duration_s)
            else:
                reason = _reason(state)
                failures.append(Failure("process", reason, call.call_id, call.rel_path))
                review.save_failed_call(con, call, run_id, reason)
                logger.error("%s failed: %s", call.call_id, reason)
            progress.advance(bar)
    store.write_failures(con, run_id, failures)
    con.close()  # the derived task opens its own connection: DuckDB allows one writer

    derived = rebuild_derived_task(db)
    con = store.connect(db)
    n_failed = len(failures)
    con.execute("UPDATE runs SET finished_at = ?, n_ok = ?, n_failed = ?, n_skipped = ?, status = ? "
                "WHERE run_id = ?", [datetime.now(), n_ok, n_failed, n_skipped,
                                     "ok" if not failures else "ok_with_failures", run_id])
    top = review.top_drift(con)
    con.close()
    return RunSummary(run_id, str(db), n_inputs, n_ok, n_skipped, failures, derived, top,
                      time.monotonic() - started)


def _reason(state) -> str:
    try:
        state.result()
    except Exception as e:  # the task's own exception, re-raised by Prefect
        return f"{type(e).__name__}: {e}"
    return state.message or "unknown failure"
