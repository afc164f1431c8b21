"""Prefect flow `review_calls`: a folder of recordings -> the DuckDB file.

Tasks are thin wrappers over pipeline/ functions and receive typed records, never connections.
The flow is the one writer: it opens one connection for the run, on its private working file,
and publishes a consistent snapshot for analysts when the run is done (pipeline/store/snapshot.py),
so an analyst's open session never blocks the run and never sees half a run. Each call is saved
in its own transaction: a crash loses at most the call in flight. One bad recording fails its
own task; the flow records it in `failures` (and `calls` with status 'failed') and carries on.
Calls whose audio hash is already stored as ok are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline import asr, review, store
from pipeline.config import Config, RunSettings, find_config_file, load_config
from pipeline.hashing import file_sha256
from pipeline.manifest import read_manifest
from pipeline.records import CallInput, CallResult, Failure
from pipeline.rows import RunRow
from pipeline.store.history import History
from pipeline.vad import load_vad_model


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
def _models(run: RunSettings) -> tuple:
    """Whisper and silero-vad, loaded once per worker process, not once per call."""
    return (asr.load_asr_model(run.model, run.device, run.models_dir), load_vad_model())


@task(name="process_call", cache_policy=NO_CACHE, task_run_name="process {call.call_id}")
def process_call_task(call: CallInput, config: Config) -> CallResult:
    asr_model, vad_model = _models(config.run)
    return review.process_call(call, asr_model, vad_model, config)


@task(name="derive_tables", cache_policy=NO_CACHE)
def derive_tables_task(history: History, config: Config) -> dict[str, pd.DataFrame]:
    return review.derive_tables(history, config)


def run_config(config_file: str | None = None) -> Config:
    """The settings of a run started without a Config: files and CALLREVIEW_* variables."""
    path = find_config_file(Path.cwd(), os.environ, Path(config_file) if config_file else None)
    return load_config(path, os.environ)


@flow(name="review_calls", log_prints=True)
def review_calls(
    folder: str = "sample_audio",
    db: str | None = None,
    config: Config | None = None,
    config_file: str | None = None,
    force: bool = False,
) -> RunSummary:
    logger = get_run_logger()
    started = time.monotonic()
    config = config or run_config(config_file)
    review.check_settings(config)
    db_path = str(db or config.run.db)
    run_id = datetime.now().strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    calls, failures = read_manifest(folder)
    n_inputs = len(calls) + len(failures)  # every manifest row, good or bad
    for f in failures:
        logger.warning("manifest line %s skipped: %s", f.row, f.reason)
    model_path = asr.resolve_model(config.run.model, config.run.models_dir)
    model_version = asr.model_version(config.run.model, config.run.models_dir)
    versions = review.versions()
    con = store.open_for_run(db_path)
    published = False
    try:
        store.mark_interrupted_runs(con)
        store.start_run(
            con,
            RunRow(
                run_id=run_id,
                started_at=datetime.now(),
                finished_at=None,
                folder=str(Path(folder).resolve()),
                n_inputs=n_inputs,
                n_ok=None,
                n_failed=None,
                n_skipped=None,
                asr_model=f"{model_version} ({model_path})",
                device=asr.pick_device(config.run.device),
                versions=store.to_json(versions),
                status="running",
            ),
        )
        done = {} if force else store.done_calls(con)
        n_ok = n_skipped = 0
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, transient=True) as progress:
            bar = progress.add_task("reviewing calls", total=len(calls))
            for call in calls:
                progress.update(bar, description=f"reviewing {call.call_id}")
                if call.call_id in done and done[call.call_id] == file_sha256(call.path):
                    n_skipped += 1
                    progress.advance(bar)
                    continue
                state = process_call_task(call, config, return_state=True)
                if state.is_completed():
                    result: CallResult = state.result()
                    store.save_call(con, result, run_id, versions["callreview"], model_version)
                    n_ok += 1
                    logger.info(
                        "%s: %d utterances, %.0f s",
                        call.call_id,
                        len(result.utterances),
                        result.duration_s,
                    )
                else:
                    reason = _reason(state)
                    failures.append(Failure("process", reason, call.call_id, call.rel_path))
                    store.save_failed_call(con, call, run_id, reason)
                    logger.error("%s failed: %s", call.call_id, reason)
                progress.advance(bar)
        store.write_failures(con, run_id, failures)
        derived = derive_tables_task(store.load_history(con), config)
        store.replace_derived(con, derived)
        store.finish_run(
            con,
            run_id,
            n_ok,
            len(failures),
            n_skipped,
            "ok" if not failures else "ok_with_failures",
        )
        top = store.top_drift(con)
        store.publish(con, db_path)  # closes the connection
        published = True
    finally:
        if not published:
            con.close()
    return RunSummary(
        run_id,
        db_path,
        n_inputs,
        n_ok,
        n_skipped,
        failures,
        {t: len(f) for t, f in derived.items()},
        top,
        time.monotonic() - started,
    )


def _reason(state) -> str:
    try:
        state.result()
    except Exception as e:  # the task's own exception, re-raised by Prefect
        return f"{type(e).__name__}: {e}"
    return state.message or "unknown failure"
