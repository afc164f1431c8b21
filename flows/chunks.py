"""A run's chunks in flight: what the flow decides per call without reading any file, the
preparation tasks submitted one chunk ahead, and a chunk's outcome once transcribed and measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass, field

import dask
import numpy as np
from prefect import get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner

from flows.cluster import gpu_annotations, on_cluster
from flows.tasks import (
    Skipped,
    Unsettled,
    first_prints_task,
    measure_call_task,
    prepare_call_task,
    transcribe_chunk_task,
)
from pipeline import intake, mono, review
from pipeline.config import Config
from pipeline.intake import FileLook, StoredFile
from pipeline.manifest import ManifestChunk
from pipeline.records import CallInput, CallResult, Failure, PreparedCall, Transcript
from pipeline.speakers import VoicePrint


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


def _transcribe_state(prepared: list[PreparedCall], config: Config, runner: TaskRunner):  # noqa: ANN202
    """Transcribe in the flow's own process (its model is loaded once there), or on a Dask
    worker (a GPU worker when the cluster has one)."""
    if not on_cluster(runner):
        return transcribe_chunk_task(prepared, config, return_state=True)
    with dask.annotate(**gpu_annotations(runner)):
        future = runner.submit(transcribe_chunk_task, {"prepared": prepared, "config": config})
    future.wait()
    return future.state


def _transcribe(
    prepared: list[PreparedCall], config: Config, out: ChunkOutcome, runner: TaskRunner
) -> dict[str, Transcript]:
    """The chunk's transcripts; when the shared batch fails, each call alone, so one bad call
    fails only itself."""
    if not prepared:
        return {}
    state = _transcribe_state(prepared, config, runner)
    if state.is_completed():
        return state.result()
    transcripts: dict[str, Transcript] = {}
    for p in prepared:
        one = _transcribe_state([p], config, runner)
        if one.is_completed():
            transcripts.update(one.result())
        else:
            out.fail(p.call, _reason(one))
    return transcripts


def finish_chunk(
    flight: ChunkInFlight,
    runner: TaskRunner,
    prints: dict[str, VoicePrint],
    config: Config,
    stored: Container[str],
    stored_stereo: Callable[[list[str]], list[CallInput]],
) -> ChunkOutcome:
    """Wait for the chunk's preparation, attribute its mono calls, transcribe it, measure its
    calls. `prints` (the agents' voice prints) is updated in place for the next chunk.
    `stored_stereo(agent_ids)`: those agents' stored stereo calls a first print is built from
    (store.stored_stereo_calls)."""
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
    first = _first_prints(prepared, prints, config, stored_stereo, runner, out)
    prepared, out.prints, choices = review.attribute_chunk(prepared, prints, config, stored, first)
    prints.update(out.prints)
    transcripts = _transcribe(prepared, config, out, runner)
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


def _first_prints(
    prepared: list[PreparedCall],
    prints: Mapping[str, VoicePrint],
    config: Config,
    stored_stereo: Callable[[list[str]], list[CallInput]],
    runner: TaskRunner,
    out: ChunkOutcome,
) -> dict[str, list[np.ndarray | None]]:
    """The stereo embeddings of agents whose first mono call is in this chunk: their earliest
    stored stereo calls, then this chunk's, up to [speakers] print_calls_max in all. A failure
    here costs the chunk its prints, not its calls: the mono calls fall back to recurrence."""
    lacking = sorted({p.call.agent_id for p in prepared if p.voices} - prints.keys())
    if not lacking:
        return {}
    here = {p.call.call_id for p in prepared}
    cap = config.speakers.print_calls_max
    from_store = [c for c in stored_stereo(lacking) if c.call_id not in here]
    room = {a: cap - sum(c.agent_id == a for c in from_store) for a in lacking}
    from_chunk = []
    for p in prepared:
        if p.voices is None and room.get(p.call.agent_id, 0) > 0:
            room[p.call.agent_id] -= 1
            from_chunk.append(p)
    if not from_store and not from_chunk:
        return {}
    future = runner.submit(
        first_prints_task, {"stored": from_store, "prepared": from_chunk, "config": config}
    )
    future.wait()
    if not future.state.is_completed():
        get_run_logger().warning(
            "voice prints of %s not built (their mono calls fall back to recurrence): %s",
            ", ".join(lacking),
            _reason(future.state),
        )
        return {}
    return future.result()


def _submit_chunk(
    chunk: ManifestChunk,
    runner: TaskRunner,
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
        embed = c.call_id not in stored and mono.needs_print(c.agent_id, prints, config)
        parameters = {
            "call": c,
            "config": config,
            "stored": done.get(c.call_id),
            "embed_agent": embed,
            "look": look,
        }
        futures.append((c, runner.submit(prepare_call_task, parameters)))
    return ChunkInFlight(chunk, futures, n_skipped, unsettled)


def chunks_in_flight(
    chunks: Iterator[ManifestChunk],
    runner: TaskRunner,
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


def _reason(state) -> str:
    try:
        state.result()
    except Exception as e:  # the task's own exception, re-raised by Prefect
        return f"{type(e).__name__}: {e}"
    return state.message or "unknown failure"
