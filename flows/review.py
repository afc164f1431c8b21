"""Prefect flow `review_calls`: a folder of recordings -> the DuckDB file, in streamed chunks.

    manifest --chunks of run.chunk_calls--> prepare (concurrent tasks: decode, hash, VAD)
        -> transcribe the chunk (one task: windows of all its calls share Whisper's batches)
        -> measure (concurrent tasks) -> store the chunk (one transaction) -> next chunk
    ... then the derived tables, then publish the snapshot analysts read.

The next chunk is prepared while this one is transcribed, so audio decoding and VAD overlap
Whisper (and a GPU never waits for them). Memory holds about two chunks of audio, whatever the
folder size. Tasks are thin wrappers over pipeline/review.py and receive typed records, never
connections; each worker process loads the models once (`_models`). The flow is the one
writer: one connection per run, on a private working file that is published as a consistent
snapshot at the end (pipeline/store/snapshot.py), so an analyst's open session never blocks the
run and never sees half a run. A crash loses at most the chunk in flight; a re-run skips every
call whose audio hash is already stored as ok, so it redoes exactly that chunk. One bad
recording fails its own task; it is stored as failed with its reason and the rest goes on.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline import asr, mono, review, store
from pipeline.asr.decode import AsrRuntime
from pipeline.config import Config, RunSettings, find_config_file, load_config
from pipeline.hashing import file_sha256
from pipeline.manifest import ManifestChunk, check_manifest, iter_manifest
from pipeline.memory import release_freed_memory
from pipeline.records import CallInput, CallResult, Failure, PreparedCall, Transcript
from pipeline.rows import RunRow
from pipeline.speakers import AgentChoice, SpeakerEncoder, VoicePrint
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
    audio_s: float = 0.0  # audio reviewed in this run (processed calls)


# ---------------------------------------------------------------------------------- models


@lru_cache(maxsize=2)
def _asr_model(run: RunSettings, compute: str) -> AsrRuntime:
    """Whisper and how it is run ([asr] compute), loaded once per worker process, not once per
    call or chunk."""
    return asr.load_asr_runtime(run.model, run.device, run.models_dir, compute)


@lru_cache(maxsize=1)
def _encoder() -> SpeakerEncoder:
    """The GE2E speaker encoder (mono calls, agents' voice prints); read-only, shared."""
    return mono.load_encoder()


_local = threading.local()


def _vad_model():
    """silero-vad keeps state between its windows: one model per thread that prepares calls."""
    if not hasattr(_local, "vad"):
        _local.vad = load_vad_model()
    return _local.vad


# ----------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Skipped:
    """A call whose audio is already stored as ok (same hash): nothing to redo."""

    call: CallInput


@task(name="prepare_call", cache_policy=NO_CACHE, task_run_name="prepare {call.call_id}")
def prepare_call_task(
    call: CallInput, config: Config, stored_sha256: str | None, embed_agent: bool
) -> PreparedCall | Skipped:
    if stored_sha256 is not None and stored_sha256 == file_sha256(call.path):
        return Skipped(call)
    return review.prepare_call(call, _vad_model(), _encoder(), config, embed_agent)


@task(name="transcribe_chunk", cache_policy=NO_CACHE)
def transcribe_chunk_task(prepared: list[PreparedCall], config: Config) -> dict[str, Transcript]:
    return review.transcribe_chunk(prepared, _asr_model(config.run, config.asr.compute), config)


@task(name="measure_call", cache_policy=NO_CACHE, task_run_name="measure {prepared.call.call_id}")
def measure_call_task(
    prepared: PreparedCall, transcript: Transcript, config: Config, choice: AgentChoice | None
) -> CallResult:
    return review.measure_prepared(prepared, transcript, config, choice)


@task(name="derive_tables", cache_policy=NO_CACHE)
def derive_tables_task(history: History, config: Config) -> dict[str, pd.DataFrame]:
    return review.derive_tables(history, config)


# ------------------------------------------------------------------------------------ flow


@dataclass
class ChunkOutcome:
    results: list[CallResult] = field(default_factory=list)
    failed: list[tuple[CallInput, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    n_skipped: int = 0
    prints: dict[str, VoicePrint] = field(default_factory=dict)  # refreshed by this chunk

    def fail(self, call: CallInput, reason: str) -> None:
        """A call that failed in processing: a failed `calls` row and a `failures` row."""
        self.failed.append((call, reason))
        self.failures.append(Failure("process", reason, call.call_id, call.rel_path))


def _transcribe(prepared: list[PreparedCall], config: Config, out: ChunkOutcome) -> dict:
    """The chunk's transcripts; when the shared batch fails, each call alone, so one bad call
    fails only itself."""
    if not prepared:
        return {}
    state = transcribe_chunk_task(prepared, config, return_state=True)
    if state.is_completed():
        return state.result()
    transcripts: dict[str, Transcript] = {}
    for p in prepared:
        one = transcribe_chunk_task([p], config, return_state=True)
        if one.is_completed():
            transcripts.update(one.result())
        else:
            out.fail(p.call, _reason(one))
    return transcripts


def _finish_chunk(
    chunk: ManifestChunk,
    futures: list[PrefectFuture],
    prints: dict[str, VoicePrint],
    config: Config,
    stored: Container[str],
) -> ChunkOutcome:
    """Wait for the chunk's preparation, attribute its mono calls, transcribe it, measure its
    calls. `prints` (the agents' voice prints) is updated in place for the next chunk."""
    out = ChunkOutcome(failures=list(chunk.failures))
    prepared: list[PreparedCall] = []
    for call, future in zip(chunk.calls, futures, strict=True):
        future.wait()
        if future.state.is_completed():
            value = future.result()
            if isinstance(value, Skipped):
                out.n_skipped += 1
            else:
                prepared.append(value)
        else:
            out.fail(call, _reason(future.state))
    prepared, out.prints, choices = review.attribute_chunk(prepared, prints, config, stored)
    prints.update(out.prints)
    transcripts = _transcribe(prepared, config, out)
    measured = [
        (
            p,
            measure_call_task.submit(
                p, transcripts[p.call.call_id], config, choices.get(p.call.call_id)
            ),
        )
        for p in prepared
        if p.call.call_id in transcripts
    ]
    for p, future in measured:
        future.wait()
        if future.state.is_completed():
            out.results.append(future.result())
        else:
            out.fail(p.call, _reason(future.state))
    return out


def _chunks_in_flight(
    chunks: Iterator[ManifestChunk],
    config: Config,
    done: dict[str, str],
    prints: dict[str, VoicePrint],
    stored: Container[str],
) -> Iterator[tuple[ManifestChunk, list[PrefectFuture]]]:
    """Each chunk with its preparation already submitted, one chunk ahead of the consumer: while
    a chunk is transcribed, the next one is being decoded and VAD-ed.

    A call already `stored` fed the agent's voice print when it was first processed, so it is
    not embedded again (a --force re-run would count it twice)."""
    pending: tuple[ManifestChunk, list[PrefectFuture]] | None = None
    for chunk in chunks:
        futures = [
            prepare_call_task.submit(
                c,
                config,
                done.get(c.call_id),
                c.call_id not in stored and review.needs_print(c.agent_id, prints, config),
            )
            for c in chunk.calls
        ]
        if pending is not None:
            yield pending
        pending = (chunk, futures)
    if pending is not None:
        yield pending


def run_config(config_file: str | None = None) -> Config:
    """The settings of a run started without a Config: files and CALLREVIEW_* variables."""
    path = find_config_file(Path.cwd(), os.environ, Path(config_file) if config_file else None)
    return load_config(path, os.environ)


@flow(name="review_calls", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
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
    n_inputs = check_manifest(folder)  # every manifest row, good or bad; fails a bad file now
    model_path = asr.resolve_model(config.run.model, config.run.models_dir)
    model_version = asr.model_version(config.run.model, config.run.models_dir)
    versions = review.versions()
    con = store.open_for_run(db_path)
    published = False
    failures: list[Failure] = []
    n_ok = n_skipped = 0
    audio_s = 0.0
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
        stored = store.done_calls(con)
        done = {} if force else stored
        prints = store.load_voice_prints(con)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        chunks = iter_manifest(folder, config.run.chunk_calls)
        with Progress(*columns, transient=True) as progress:
            bar = progress.add_task("reviewing calls", total=n_inputs)
            for chunk, futures in _chunks_in_flight(chunks, config, done, prints, stored):
                out = _finish_chunk(chunk, futures, prints, config, stored)
                store.save_chunk(
                    con,
                    run_id,
                    out.results,
                    out.failed,
                    out.failures,
                    out.prints,
                    versions["callreview"],
                    model_version,
                )
                for f in out.failures:
                    where = f"line {f.row}" if f.row else f"call {f.call_id}"
                    logger.warning("%s (%s) failed: %s", where, f.stage, f.reason)
                failures += out.failures
                n_ok += len(out.results)
                n_skipped += out.n_skipped
                audio_s += sum(r.duration_s for r in out.results)
                progress.advance(bar, len(chunk.calls) + len(chunk.failures))
                del out, futures  # stored: free the chunk's audio and results before the next
                release_freed_memory()
                wall = time.monotonic() - started
                progress.update(bar, description=f"reviewing calls, {audio_s / wall:.0f}x realtime")
                logger.info(
                    "%d / %d inputs: %d ok, %d skipped, %d failed; %.2f h of audio in %.0f s "
                    "(%.0f audio hours per wall hour)",
                    progress.tasks[0].completed,
                    n_inputs,
                    n_ok,
                    n_skipped,
                    len(failures),
                    audio_s / 3600,
                    wall,
                    audio_s / wall,
                )
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
        audio_s,
    )


def review_flow(config: Config):
    """`review_calls` with the run's concurrency setting (run.workers task threads)."""
    return review_calls.with_options(
        task_runner=ThreadPoolTaskRunner(max_workers=config.run.workers)
    )


def _reason(state) -> str:
    try:
        state.result()
    except Exception as e:  # the task's own exception, re-raised by Prefect
        return f"{type(e).__name__}: {e}"
    return state.message or "unknown failure"
