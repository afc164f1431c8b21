"""What a run needs: which model a --model value means, its label, and the loaded model.

torch and whisper are imported inside the functions: importing pipeline.asr (from the CLI, or
for the constants) should not cost the 1-2 s torch import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.asr.convert import set_alignment_heads
from pipeline.asr.prepare import prepare
from pipeline.asr.verify import (
    ASR_CHECKPOINT_VERSION,
    CHECKPOINT_NAME,
    STAMP_NAME,
    read_stamp,
    stamp_fits_file,
)

if TYPE_CHECKING:
    import whisper.model

    from pipeline.asr.decode import AsrRuntime

DEFAULT_MODEL = "base"
# --model values that mean "our prepared checkpoint" (compared after strip + lower).
_SPECS_FOR_OURS = {"", DEFAULT_MODEL, "default"}


def _prepared_checkpoint(models_dir: Path) -> Path:
    """models_dir/whisper-base.pt, trusted when its size and mtime are the stamped ones.

    A run does not hash the 145 MB file: the stamp was written by prepare() after hashing and
    verifying it, and any rewrite of the file changes its mtime. When the stat check fails
    (missing, rebuilt elsewhere, copied folder) prepare() decides: re-stamp or rebuild.
    """
    checkpoint = models_dir / CHECKPOINT_NAME
    info = read_stamp(models_dir / STAMP_NAME)
    if info is not None and stamp_fits_file(checkpoint, info):
        return checkpoint
    return prepare(models_dir)


def resolve_model(spec: str | None, models_dir: Path) -> str:
    """What to hand whisper.load_model for a user's --model value.

    None / "base" / "default" -> our prepared checkpoint (built now if missing);
    an existing file -> that path; anything else -> an openai-whisper model name, which
    whisper downloads into models_dir (only where its CDN is reachable).
    """
    if spec is None or spec.strip().lower() in _SPECS_FOR_OURS:
        return str(_prepared_checkpoint(Path(models_dir)))
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path.resolve())
    if path.suffix == ".pt" or os.sep in spec:
        raise FileNotFoundError(f"model checkpoint {spec} does not exist")
    import whisper

    if spec not in whisper.available_models():
        raise ValueError(
            f"unknown model {spec!r}: use 'base', a checkpoint path (.pt), or one of "
            f"{', '.join(whisper.available_models())}"
        )
    return spec


def pick_device(device: str | None) -> str:
    """The device asked for, else cuda when torch sees one, else cpu."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have (ValueError), before any call is touched."""
    import torch

    if device is None or device == "cpu":
        return
    if not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}: use cpu or cuda (or leave it empty)")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
        raise ValueError(
            f"device {device!r} asked for, but torch sees no CUDA device on this machine "
            f"(torch {torch.__version__}, {build}): use --device cpu or leave it empty"
        )
    index = device.partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise ValueError(
            f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )


def model_version(spec: str | None, models_dir: Path) -> str:
    """A short label of the model behind `spec`, for the runs table.

    For our checkpoint it names the exact file verified (the stamp's sha256 prefix), read from
    the stamp rather than hashed.
    """
    if spec is None or spec.strip().lower() in _SPECS_FOR_OURS:
        info = read_stamp(Path(models_dir) / STAMP_NAME)
        sha = str(info.get("sha256", ""))[:12] if info else ""
        return f"{ASR_CHECKPOINT_VERSION} sha256 {sha}" if sha else ASR_CHECKPOINT_VERSION
    path = Path(spec).expanduser()
    return f"local checkpoint {path.name}" if path.is_file() else f"openai-whisper {spec}"


def load_asr_model(spec: str | None, device: str | None, models_dir: Path) -> whisper.model.Whisper:
    """Load the ASR model for transcription (float32 weights; fp16 is decided per call).

    `device` None means cuda when available, else cpu.
    """
    import torch
    import whisper

    device = pick_device(device)
    target = resolve_model(spec, models_dir)
    # load_model builds Whisper(dims) in float32 and copies the float16 file into it.
    model = whisper.load_model(target, device=device, download_root=str(models_dir))
    if Path(target).is_file():
        # mmap: reads only the small "alignment_heads" entry, not the 145 MB of tensors again.
        ckpt = torch.load(target, map_location="cpu", weights_only=True, mmap=True)
        if ckpt.get("alignment_heads"):
            set_alignment_heads(model, ckpt["alignment_heads"])
    return model.float() if device == "cpu" else model


def load_asr_runtime(
    spec: str | None, device: str | None, models_dir: Path, compute: str = "auto"
) -> AsrRuntime:
    """load_asr_model, then decide once how it is run ([asr] compute; pipeline.asr.decode):
    auto | fp32 | bf16 | int8 on CPU, fp16 (or fp32) on CUDA. `auto` is the mode measured
    fastest on this machine (pipeline/asr/measure.py; recorded in models_dir)."""
    from pipeline.asr.decode import make_runtime
    from pipeline.asr.measure import measured_compute

    model = load_asr_model(spec, device, models_dir)
    if compute == "auto":
        compute = measured_compute(model, Path(models_dir))
    return make_runtime(model, compute)
