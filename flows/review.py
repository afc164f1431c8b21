"""Prefect flow `review_calls`: a folder of recordings -> the DuckDB file, in streamed chunks.

    manifest --chunks of run.chunk_calls--> prepare (concurrent tasks: decode, hash, VAD)
        -> transcribe the chunk (one task: windows of all its calls share Whisper's batches)
        -> measure (concurrent tasks) -> store the chunk (one transaction) -> next chunk
    ... then the derived tables, then publish the snapshot analysts read.

The next chunk is prepared while this one is transcribed, so audio decoding and VAD overlap
Whisper (and a GPU never waits for them). Memory holds about two chunks of audio, whatever the
folder size. Tasks are thin wrappers over pipeline/review.py and receive typed records, never
connections (flows/tasks.py: each worker process loads the models once; flows/chunks.py:
the chunks in flight). The flow is the one
writer: one connection per run, on a private working file that is published as a consistent
snapshot at the end (pipeline/store/snapshot.py), so an analyst's open session never blocks the
run and never sees half a run. A crash loses at most the chunk in flight; a re-run skips every
call already stored as ok (same size and mtime, else same audio hash), so it redoes exactly
that chunk. One bad recording fails its own task; it is stored as failed with its reason and
the rest goes on. A recording still being written is left for the next run (pipeline/intake).

The flow's parameters are plain JSON values (folder, database, settings file, options), so a
deployment run validates them and the Prefect UI shows and edits them; the settings are loaded
once, in the flow, from the same files and variables as the CLI. A setting that makes the whole
run impossible (no folder, no CUDA, a model that cannot be loaded) fails the run before any
call is touched. Each run publishes a markdown artifact (flows/summary.py); its final state is
Completed (with a message counting failed inputs, if any) or Failed when it could not run.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import duckdb
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, State
from prefect.task_runners import TaskRunner
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.chunks import chunks_in_flight, finish_chunk
from flows.cluster import check_cluster, on_cluster, task_runner
from flows.summary import ARTIFACT_KEY, RunSummary, state_message, summary_markdown
from flows.tasks import (
    check_folder,
    check_run_possible,
    derive_tables_task,
)
from pipeline import asr, intake, review, store
from pipeline.coaching.refresh import refresh_outcomes
from pipeline.config import Config, find_config_file, load_config
from pipeline.manifest import check_manifest, iter_manifest, manifest_path
from pipeline.memory import release_freed_memory
from pipeline.records import TRANSCRIPT_VERSION, CallInput
from pipeline.redact import MASKER_VERSION
from pipeline.rows import RunRow
from pipeline.transcribe import remask_utterances

EVERY_STALE_CALL = 2**31 - 1  # --reprocess-older: no cap on the calls transcribed again


def run_config(
    config_file: str | None = None, overrides: Mapping[str, Mapping[str, object]] | None = None
) -> Config:
    """The settings of a run: the settings file, CALLREVIEW_* variables, then `overrides`
    (the flow's option parameters), read once here and passed down."""
    path = find_config_file(Path.cwd(), os.environ, Path(config_file) if config_file else None)
    return load_config(path, os.environ, overrides)


def review_folder(folder: str, config: Config, force: bool = False) -> RunSummary:
    """The whole run inside a flow run: preflight, the chunks, the derived tables, publish."""
    logger = get_run_logger()
    started = time.monotonic()
    check_folder(folder)
    review.check_settings(config)
    db_path = str(config.run.db)
    manifest = manifest_path(folder)  # ManifestError: no manifest.csv
    first = intake.look_at(manifest)
    why = intake.unsettled_reason(first, time.time_ns(), config.run.settle_s)
    n_inputs = check_manifest(folder, limit=first.size)  # every row; fails an unusable file now
    if why is None and intake.look_at(manifest) != first:
        why = "not settled: it changed while it was read"
    if why is not None:
        note = f"manifest.csv {why}; nothing read, the next run will read it"
        logger.warning(note)
        return RunSummary(None, db_path, 0, 0, 0, note=note)
    check_run_possible(config)
    with task_runner(config) as runner:  # a Dask cluster is started and checked here
        if on_cluster(runner):
            check_cluster(runner, config)
        return _review(folder, config, force, runner, n_inputs, first.size, started)


def _review(
    folder: str,
    config: Config,
    force: bool,
    runner: TaskRunner,
    n_inputs: int,
    manifest_size: int,
    started: float,
) -> RunSummary:
    """The run proper, once it is known to be possible: the chunks, derived tables, publish."""
    logger = get_run_logger()
    db_path = str(config.run.db)
    run_id = datetime.now().strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    model_path = asr.resolve_model(config.run.model, config.run.models_dir)
    model_version = asr.model_version(config.run.model, config.run.models_dir)
    versions = review.versions()
    settings = review.settings_fingerprint(config, versions)
    con = store.open_for_run(db_path)
    published = False
    summary = RunSummary(run_id, db_path, n_inputs, 0, 0)
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
                settings_sha256=settings,
            ),
        )
        done = store.done_calls(con)
        stored = frozenset(done)
        # Calls an older transcription made are transcribed again (a capped number a run), so
        # a better transcriber does not show up as the agent's drift.
        redo = frozenset(
            store.stale_transcripts(
                con,
                str(Path(folder).resolve()),
                TRANSCRIPT_VERSION,
                model_version,
                config.run.reprocess_per_run,
            )
        )
        done = {k: v for k, v in done.items() if k not in redo}
        prints = store.load_voice_prints(con)

        def stereo_calls_of(agent_ids: list[str]) -> list[CallInput]:
            return store.stored_stereo_calls(con, agent_ids, config.speakers.print_calls_max)

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        chunks = iter_manifest(folder, config.run.chunk_calls, limit=manifest_size)
        with Progress(*columns, transient=True) as progress:
            bar = progress.add_task("reviewing calls", total=n_inputs)
            flights = chunks_in_flight(
                chunks, runner, config, {} if force else done, prints, stored
            )
            for flight in flights:
                out = finish_chunk(flight, runner, prints, config, stored, stereo_calls_of)
                store.save_chunk(
                    con,
                    run_id,
                    out.results,
                    out.failed,
                    out.failures,
                    out.prints,
                    versions["callreview"],
                    model_version,
                    out.looks,
                )
                for f in out.failures:
                    where = f"line {f.row}" if f.row else f"call {f.call_id}"
                    logger.warning("%s (%s) failed: %s", where, f.stage, f.reason)
                for call_id, reason in out.unsettled:
                    logger.info("call %s left for the next run: %s", call_id, reason)
                summary.failures += out.failures
                summary.unsettled += out.unsettled
                summary.processed += [r.call.call_id for r in out.results]
                summary.n_reprocessed += sum(r.call.call_id in redo for r in out.results)
                summary.n_ok += len(out.results)
                summary.n_skipped += out.n_skipped
                summary.n_hashed += out.n_hashed
                summary.audio_s += sum(r.duration_s for r in out.results)
                progress.advance(bar, len(flight.chunk.calls) + len(flight.chunk.failures))
                del out, flight  # stored: free the chunk's audio and results before the next
                release_freed_memory()
                wall = time.monotonic() - started
                rate = summary.audio_s / wall
                progress.update(bar, description=f"reviewing calls, {rate:.0f}x realtime")
                logger.info(
                    "%d / %d inputs: %d ok, %d skipped, %d not settled, %d failed; %.2f h of "
                    "audio in %.0f s (%.0f audio hours per wall hour)",
                    progress.tasks[0].completed,
                    n_inputs,
                    summary.n_ok,
                    summary.n_skipped,
                    len(summary.unsettled),
                    len(summary.failures),
                    summary.audio_s / 3600,
                    wall,
                    rate,
                )
        remasked = remask_stored(con, config)
        summary.n_remasked = len(remasked)
        # Every derived figure of an agent comes from that agent's calls alone: recompute the
        # agents this run (or a crashed one) changed; all of them after a settings change.
        # Per-call work that reads the call's own text (behaviour detection, pairing's words) is
        # kept for calls stored before the last finished run, or by this run (done where they
        # were measured), and not masked again since.
        since = None if force else store.last_finished(con, settings)
        agents = None if since is None else store.agents_of_calls_after(con, since)
        if agents is not None and remasked:
            agents = sorted({*agents, *store.agents_of(con, remasked)})
        if agents is None or agents:
            summary.derived_rows = review.update_derived(
                con, agents, config, since, remasked, derive_tables_task, settings
            )
            # outcomes compare a coached agent with the uncoached ones: any change moves them
            summary.derived_rows["coaching_results"] = len(refresh_outcomes(con, config.coaching))
        summary.derived_agents = agents
        store.finish_run(
            con,
            run_id,
            summary.n_ok,
            len(summary.failures),
            summary.n_skipped,
            "ok" if not summary.failures else "ok_with_failures",
        )
        summary.top_drift = store.top_drift(con)
        store.publish(con, db_path)  # closes the connection
        published = True
    finally:
        if not published:
            con.close()
    if config.run.reports_dir is not None:
        from pipeline.report.index import write_all

        paths = write_all(db_path, config.run.reports_dir, config)
        summary.reports = str(paths[-1])
    summary.seconds = time.monotonic() - started
    return summary


def remask_stored(
    con: duckdb.DuckDBPyConnection, config: Config, batch_calls: int = 500
) -> list[str]:
    """Text stored under older PII rules, masked again under today's (docs/CONTRACTS.md, "When
    the masking rules change"), a batch of calls at a time: the calls re-masked."""
    done: list[str] = []
    while stale := store.stale_masked(con, MASKER_VERSION, limit=batch_calls):
        changed, spans = [], []
        for utterances in stale.values():
            text, found = remask_utterances(utterances, config.asr.redaction)
            changed += text
            spans += found
        store.save_remasked(con, MASKER_VERSION, list(stale), changed, spans)
        done += stale
    return done


@flow(name="review_calls", log_prints=True)
def review_calls(
    folder: str = "sample_audio",
    db: str | None = None,
    config_file: str | None = None,
    force: bool = False,
    model: str | None = None,
    device: str | None = None,
    workers: int | None = None,
    chunk_calls: int | None = None,
    batch_size: int | None = None,
    dask_address: str | None = None,
    dask_workers: int | None = None,
    reprocess_older: bool = False,
) -> State:
    """Review the recordings in `folder` (its manifest.csv) into the DuckDB file `db`.

    Parameters are JSON values (a deployment's run validates them): `config_file` is a
    callreview.toml; `model`, `device`, `workers`, `chunk_calls`, `batch_size` override its
    settings when given; `dask_address` / `dask_workers` run the tasks on a Dask cluster
    (flows/cluster.py); `reprocess_older` transcribes again every stored call an older
    transcription made, not only [run] reprocess_per_run of them. Final state: Completed (its message counts failed inputs, listed in
    the run's artifact), or Failed when the run could not be done.
    """
    overrides = {
        "run": {
            "db": db,
            "model": model,
            "device": device,
            "workers": workers,
            "chunk_calls": chunk_calls,
            "dask_address": dask_address,
            "dask_workers": dask_workers,
            "reprocess_per_run": EVERY_STALE_CALL if reprocess_older else None,
        },
        "asr": {"batch_size": batch_size},
    }
    config = run_config(config_file, overrides)
    later = superseded_by()
    if later is not None:
        note = f"skipped: a later scheduled run ({later}) is also due and reviews the folder"
        get_run_logger().info(note)
        return Completed(
            message=note, data=RunSummary(None, str(config.run.db), 0, 0, 0, note=note)
        )
    summary = review_folder(folder, config, force)
    create_markdown_artifact(
        markdown=summary_markdown(summary),
        key=ARTIFACT_KEY,
        description=state_message(summary),
    )
    return Completed(message=state_message(summary), data=summary)


def superseded_by() -> str | None:
    """When this is a scheduled run that was missed (the server or worker was down) and a later
    scheduled run of the same deployment is also due, the later one does the work: a night
    missed is run once, not once per missed night. Returns the later run's expected start."""
    from flows.deploy import later_due_run

    return later_due_run()
