"""What `[asr] compute = "auto"` means on a CPU: the mode measured fastest on this machine, once.

CPU flags alone mislead. bf16 halved decoding time on a CPU with AMX, but on an AMD EPYC with
AVX512-BF16 and no AMX it only matched faster-whisper, and a CPU whose bf16 is emulated runs it
slower than fp32. So the first run on a machine times each candidate mode (fp32, int8, and bf16
where the CPU multiplies it natively) on the same short workload -- a 30 s window encoded,
`STEPS` decoder steps -- and records the timings and the choice in `<models_dir>/compute.json`,
keyed by CPU model, torch version, thread count and model shape. Later runs and Dask workers of
the same kind of machine read the record (a file lock makes concurrent first uses measure once).
Delete the file to measure again. CUDA is not measured: auto means fp16 there.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import torch
import whisper

from pipeline.asr.compute import cpu_has_native_bf16
from pipeline.asr.decode import encode, forced_steps, make_runtime

RECORD_NAME = "compute.json"
WINDOWS = 1  # 30 s windows encoded per timing
STEPS = 16  # decoder steps per timing: about the share of decoding in a real run (55-60 %)
REPEATS = 2  # timings per mode; the fastest counts (another job's burst is not the mode's cost)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), as lscpu prints it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_key(dims: whisper.model.ModelDimensions) -> str:
    """What a measurement holds for: the CPU, torch, its threads, the model's shape (the
    weights' values do not change the speed)."""
    shape = f"whisper {dims.n_audio_layer}+{dims.n_text_layer} layers x {dims.n_audio_state}"
    return f"{cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads | {shape}"


def candidate_modes() -> tuple[str, ...]:
    """fp32, int8, and bf16 where the CPU has it natively (emulated bf16 is always slower)."""
    return ("fp32", "int8", "bf16") if cpu_has_native_bf16() else ("fp32", "int8")


def time_mode(model: whisper.Whisper, mode: str, repeats: int = REPEATS) -> float:
    """Seconds of the workload in `mode`: the fastest of `repeats` timings, after a warm-up
    (oneDNN's first call builds its kernels: that is not the mode's cost)."""
    runtime = make_runtime(model, mode)
    mels = torch.randn(WINDOWS, model.dims.n_mels, 3000, generator=torch.Generator().manual_seed(0))
    forced_steps(runtime, encode(runtime, mels[:1]), 2)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        forced_steps(runtime, encode(runtime, mels), STEPS)
        best = min(best, time.perf_counter() - start)
    return best


def measured_compute(model: whisper.Whisper, models_dir: Path) -> str:
    """The compute mode `auto` runs `model` in on this machine: fp16 on CUDA; on a CPU the
    recorded choice for this machine_key, measured and recorded first if there is none."""
    if model.device.type == "cuda":
        return "fp16"
    record, key = Path(models_dir) / RECORD_NAME, machine_key(model.dims)
    with _locked(record):
        known = _read(record)
        if key in known:
            return str(known[key]["mode"])
        seconds = {mode: round(time_mode(model, mode), 4) for mode in candidate_modes()}
        mode = min(seconds, key=seconds.__getitem__)
        known[key] = {
            "mode": mode,
            "seconds": seconds,
            "workload": f"30 s windows encoded: {WINDOWS}; decoder steps: {STEPS}; best of {REPEATS}",
            "measured_at": datetime.now().isoformat(timespec="seconds"),
        }
        _write(record, known)
    return mode


def _read(record: Path) -> dict[str, dict]:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: measured (and written) again
        return {}
    return data if isinstance(data, dict) else {}


def _write(record: Path, known: dict[str, dict]) -> None:
    tmp = record.with_name(record.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(known, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        tmp.replace(record)
    except OSError:  # a read-only models folder: this process runs the mode it measured
        tmp.unlink(missing_ok=True)


@contextmanager
def _locked(record: Path) -> Iterator[None]:
    """One process measures at a time: a second first use waits, then reads the record."""
    try:
        handle = open(record.with_name(record.name + ".lock"), "a")  # noqa: SIM115
    except OSError:  # a read-only models folder: no lock to take
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
