"""The flow's Prefect tasks: thin wrappers over pipeline/review.py, with the models each worker
process loads once. A task receives typed records, never connections."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline import asr, intake, mono, review
from pipeline.asr.decode import AsrRuntime
from pipeline.audio import AudioError
from pipeline.config import Config
from pipeline.hashing import file_sha256
from pipeline.intake import FileLook, NotSettledError, StoredFile
from pipeline.records import CallInput, CallResult, PreparedCall, Transcript
from pipeline.speakers import AgentChoice, SpeakerEncoder
from pipeline.store.history import History
from pipeline.vad import load_vad_model

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


class RunImpossibleError(RuntimeError):
    """The run cannot be done at all (no folder, an impossible device or model): one line, no
    call touched, nothing published."""


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


@task(name="first_voice_prints", cache_policy=NO_CACHE)
def first_prints_task(
    stored: list[CallInput], prepared: list[PreparedCall], config: Config
) -> dict[str, list[np.ndarray | None]]:
    return mono.first_print_embeddings(stored, prepared, _vad_model(), _encoder(), config)


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
