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
import threading
import time
import uuid
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.states import Completed, State
from prefect.task_runners import ThreadPoolTaskRunner
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.summary import ARTIFACT_KEY, RunSummary, state_message, summary_markdown
from pipeline import asr, intake, mono, review, store
from pipeline.asr.decode import AsrRuntime
from pipeline.audio import AudioError
from pipeline.config import Config, find_config_file, load_config
from pipeline.hashing import file_sha256
from pipeline.intake import FileLook, NotSettledError, StoredFile
from pipeline.manifest import ManifestChunk, check_manifest, iter_manifest, manifest_path
from pipeline.memory import release_freed_memory
from pipeline.records import CallInput, CallResult, Failure, PreparedCall, Transcript
from pipeline.rows import RunRow
from pipeline.speakers import AgentChoice, SpeakerEncoder, VoicePrint
from pipeline.store.history import History
from pipeline.vad import load_vad_model


class RunImpossibleError(RuntimeError):
    """The run cannot be done at all (no folder, an impossible device or model): one line, no
    call touched, nothing published."""


# ---------------------------------------------------------------------------------- models


@lru_cache(maxsize=2)
def _asr_model(model: str | None, device: str | None, models_dir: Path, compute: str) -> AsrRuntime:
    """Whisper and how it is run ([asr] compute), loaded once per worker process, not once per
    call or chunk."""
    return asr.load_asr_runtime(model, device, models_dir, compute)


def asr_model(config: Config) -> AsrRuntime:
    run = config.run
    return _asr_model(run.model, run.device, run.models_dir, config.asr.compute)


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


def check_run_possible(config: Config) -> None:
    """Settings that would fail every call, found before any call is touched: the device and
    the Whisper model are tried here (the model stays loaded for the run's transcription)."""
    try:
        asr.check_device(config.run.device)
    except ValueError as e:
        raise RunImpossibleError(str(e)) from None
    try:
        asr_model(config)
    except Exception as e:  # noqa: BLE001  any load error: a URL, a missing file, bad weights
        raise RunImpossibleError(
            f"Whisper model {config.run.model or 'base (prepared)'!r} cannot be loaded here: "
            f"{type(e).__name__}: {e}"
        ) from None


def check_folder(folder: str) -> None:
    path = Path(folder)
    if not path.is_dir():
        raise RunImpossibleError(
            f"recordings folder {path} does not exist or is not a folder (is the share mounted?)"
        )
    if next(path.iterdir(), None) is None:
        raise RunImpossibleError(f"recordings folder {path} is empty (is the share mounted?)")


# ----------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Skipped:
    """A call whose audio is already stored as ok (same hash): nothing to redo. `look` is the
    file's new size and mtime, stored so the next run skips it without reading it."""

    call: CallInput
    look: FileLook


@dataclass(frozen=True)
class Unsettled:
    """A recording still being written: left for the next run."""

    call: CallInput
    reason: str


def _transient(task, task_run, state) -> bool:  # noqa: ANN001  (Prefect's retry hook)
    """Retry a file that could not be read at all (vanished, locked, an I/O error on a share),
    never a recording that was read and is bad."""
    error = state.data
    return isinstance(error, OSError) or getattr(error, "transient", False)


@task(
    name="prepare_call",
    cache_policy=NO_CACHE,
    task_run_name="prepare {call.call_id}",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=_transient,
)
def prepare_call_task(
    call: CallInput, config: Config, stored: StoredFile | None, embed_agent: bool, look: FileLook
) -> PreparedCall | Skipped | Unsettled:
    try:
        if stored is not None and stored.sha256 == file_sha256(call.path):
            intake.check_unchanged(call.path, look)
            return Skipped(call, look)
        try:
            prepared = review.prepare_call(call, _vad_model(), _encoder(), config, embed_agent)
        except AudioError:
            intake.check_unchanged(call.path, look)  # a half-copied file reads as truncated
            raise
        intake.check_unchanged(call.path, look)  # the second look: it did not grow meanwhile
    except NotSettledError as e:
        return Unsettled(call, str(e))
    return PreparedCall(
        prepared.call,
        prepared.audio,
        prepared.segments,
        prepared.voices,
        prepared.agent_embedding,
        look,
    )


@task(name="transcribe_chunk", cache_policy=NO_CACHE)
def transcribe_chunk_task(prepared: list[PreparedCall], config: Config) -> dict[str, Transcript]:
    return review.transcribe_chunk(prepared, asr_model(config), config)


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
    n_hashed: int = 0
    unsettled: list[tuple[str, str]] = field(default_factory=list)
    looks: dict[str, FileLook] = field(default_factory=dict)  # skipped by hash: new size/mtime
    prints: dict[str, VoicePrint] = field(default_factory=dict)  # refreshed by this chunk

    def fail(self, call: CallInput, reason: str) -> None:
        """A call that failed in processing: a failed `calls` row and a `failures` row."""
        self.failed.append((call, reason))
        self.failures.append(Failure("process", reason, call.call_id, call.rel_path))


@dataclass
class ChunkInFlight:
    """A chunk whose preparation is submitted: the futures of the calls that need work, and
    what the flow already decided without reading any file."""

    chunk: ManifestChunk
    futures: list[tuple[CallInput, PrefectFuture]]
    n_skipped: int  # stored and unchanged (same size and mtime): not read
    unsettled: list[tuple[str, str]]  # modified within the settle time


def _transcribe(
    prepared: list[PreparedCall], config: Config, out: ChunkOutcome
) -> dict[str, Transcript]:
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
    flight: ChunkInFlight,
    runner: ThreadPoolTaskRunner,
    prints: dict[str, VoicePrint],
    config: Config,
    stored: Container[str],
) -> ChunkOutcome:
    """Wait for the chunk's preparation, attribute its mono calls, transcribe it, measure its
    calls. `prints` (the agents' voice prints) is updated in place for the next chunk."""
    out = ChunkOutcome(
        failures=list(flight.chunk.failures),
        n_skipped=flight.n_skipped,
        unsettled=list(flight.unsettled),
    )
    prepared: list[PreparedCall] = []
    for call, future in flight.futures:
        future.wait()
        if not future.state.is_completed():
            out.fail(call, _reason(future.state))
            continue
        value = future.result()
        if isinstance(value, Skipped):
            out.n_skipped += 1
            out.n_hashed += 1
            out.looks[call.call_id] = value.look
        elif isinstance(value, Unsettled):
            out.unsettled.append((call.call_id, value.reason))
        else:
            out.n_hashed += call.call_id in stored
            prepared.append(value)
    prepared, out.prints, choices = review.attribute_chunk(prepared, prints, config, stored)
    prints.update(out.prints)
    transcripts = _transcribe(prepared, config, out)
    measured = [
        (
            p,
            runner.submit(
                measure_call_task,
                {
                    "prepared": p,
                    "transcript": transcripts[p.call.call_id],
                    "config": config,
                    "choice": choices.get(p.call.call_id),
                },
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


def _submit_chunk(
    chunk: ManifestChunk,
    runner: ThreadPoolTaskRunner,
    config: Config,
    done: Mapping[str, StoredFile],
    prints: dict[str, VoicePrint],
    stored: Container[str],
) -> ChunkInFlight:
    """Look at each call's file (one stat, no read): still being written -> next run; stored
    and unchanged -> skipped; otherwise a preparation task (which hashes a stored call's file
    to tell a touched file from a changed one).

    A call already `stored` fed the agent's voice print when it was first processed, so it is
    not embedded again (a --force re-run would count it twice)."""
    now_ns = time.time_ns()
    futures: list[tuple[CallInput, PrefectFuture]] = []
    n_skipped = 0
    unsettled: list[tuple[str, str]] = []
    for c in chunk.calls:
        try:
            look = intake.look_at(c.path)
        except OSError:
            look = FileLook(-1, 0)  # vanished since the manifest was read: the task says why
        why = intake.unsettled_reason(look, now_ns, config.run.settle_s) if look.size >= 0 else None
        if why:
            unsettled.append((c.call_id, why))
            continue
        if intake.is_unchanged(done.get(c.call_id), look):
            n_skipped += 1
            continue
        embed = c.call_id not in stored and review.needs_print(c.agent_id, prints, config)
        parameters = {
            "call": c,
            "config": config,
            "stored": done.get(c.call_id),
            "embed_agent": embed,
            "look": look,
        }
        futures.append((c, runner.submit(prepare_call_task, parameters)))
    return ChunkInFlight(chunk, futures, n_skipped, unsettled)


def _chunks_in_flight(
    chunks: Iterator[ManifestChunk],
    runner: ThreadPoolTaskRunner,
    config: Config,
    done: Mapping[str, StoredFile],
    prints: dict[str, VoicePrint],
    stored: Container[str],
) -> Iterator[ChunkInFlight]:
    """Each chunk with its preparation already submitted, one chunk ahead of the consumer: while
    a chunk is transcribed, the next one is being decoded and VAD-ed."""
    pending: ChunkInFlight | None = None
    for chunk in chunks:
        flight = _submit_chunk(chunk, runner, config, done, prints, stored)
        if pending is not None:
            yield pending
        pending = flight
    if pending is not None:
        yield pending


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
        prints = store.load_voice_prints(con)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        chunks = iter_manifest(folder, config.run.chunk_calls, limit=first.size)
        with (
            ThreadPoolTaskRunner(max_workers=config.run.workers) as runner,
            Progress(*columns, transient=True) as progress,
        ):
            bar = progress.add_task("reviewing calls", total=n_inputs)
            flights = _chunks_in_flight(
                chunks, runner, config, {} if force else done, prints, stored
            )
            for flight in flights:
                out = _finish_chunk(flight, runner, prints, config, stored)
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
        if force or not store.derived_is_current(con, settings):
            derived = derive_tables_task(store.load_history(con), config)
            store.replace_derived(con, derived)
            summary.derived_rows = {t: len(f) for t, f in derived.items()}
        # else: no call changed, so the derived tables computed from them stand as they are
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
) -> State:
    """Review the recordings in `folder` (its manifest.csv) into the DuckDB file `db`.

    Parameters are JSON values (a deployment's run validates them): `config_file` is a
    callreview.toml; `model`, `device`, `workers`, `chunk_calls`, `batch_size` override its
    settings when given. Final state: Completed (its message counts failed inputs, listed in
    the run's artifact), or Failed when the run could not be done.
    """
    overrides = {
        "run": {
            "db": db,
            "model": model,
            "device": device,
            "workers": workers,
            "chunk_calls": chunk_calls,
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


def _reason(state) -> str:
    try:
        state.result()
    except Exception as e:  # the task's own exception, re-raised by Prefect
        return f"{type(e).__name__}: {e}"
    return state.message or "unknown failure"
