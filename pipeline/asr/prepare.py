"""Build models/whisper-base.pt once: fetch, convert, save, verify, stamp.

    find_weight_parts() -> read_ct2() -> ct2_to_openai() -> torch.save -> verify() -> stamp

This is the only place the 145 MB checkpoint is hashed; a run (load.py) trusts the stamp.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from pipeline.asr.convert import ct2_to_openai
from pipeline.asr.ct2 import read_ct2
from pipeline.asr.fetch import ModelPrepareError, find_weight_parts
from pipeline.asr.verify import (
    CHECKPOINT_NAME,
    STAMP_NAME,
    VERIFY_AUDIO,
    VERIFY_MAX_CER,
    VerifyResult,
    read_stamp,
    stamp_fits_content,
    stamp_fits_file,
    verify,
    write_atomically,
    write_stamp,
)
from pipeline.hashing import file_sha256


def prepare(models_dir: Path, force: bool = False) -> Path:
    """Build models_dir/whisper-base.pt from the registry packages if needed; return its path.

    Idempotent: when the checkpoint's bytes are the stamped ones, returns after hashing them
    (about 0.1 s). Otherwise converts, verifies the new file *before* it replaces anything,
    then writes the stamp.
    """
    models_dir = Path(models_dir)
    checkpoint = models_dir / CHECKPOINT_NAME
    stamp = models_dir / STAMP_NAME
    info = None if force else read_stamp(stamp)
    if info is not None and stamp_fits_content(checkpoint, info):
        if not stamp_fits_file(checkpoint, info):
            # Same bytes, new mtime (a copied folder, or a stamp from before mtimes were
            # recorded): re-stamp so that runs trust the file again without hashing it.
            write_stamp(stamp, checkpoint, info)
        return checkpoint

    import torch  # only now: the check above must not cost the 1-2 s import

    models_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)  # from here on the old stamp no longer describes the file
    t0 = time.perf_counter()
    part1, part2, data_dir = find_weight_parts(models_dir / ".cache")
    variables, aliases = read_ct2([part1, part2])
    config = json.loads((data_dir / "config.json").read_text(encoding="utf-8"))
    converted = ct2_to_openai(variables, aliases, config)
    del variables  # drop the 150 MB source buffer before saving
    convert_s = time.perf_counter() - t0

    result: VerifyResult | None = None

    def save_and_verify(tmp: Path) -> None:
        nonlocal result
        torch.save(converted, tmp)
        result = verify(tmp)
        if result.shape_errors:
            raise ModelPrepareError(
                f"converted checkpoint has wrong tensors: {list(result.shape_errors)}"
            )
        if not result.ok:
            raise ModelPrepareError(
                f"converted checkpoint failed verification on {VERIFY_AUDIO.name}: transcript "
                f"{result.transcript!r}, expected {result.expected!r} "
                f"(CER {result.cer}, limit {VERIFY_MAX_CER})"
            )

    write_atomically(checkpoint, save_and_verify)
    assert result is not None
    info = {
        "sha256": file_sha256(checkpoint),
        "source": [str(part1), str(part2)],
        "convert_s": round(convert_s, 3),
        "verify": asdict(result),
        "verify_clip_sha256": file_sha256(VERIFY_AUDIO),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_stamp(stamp, checkpoint, info)
    return checkpoint


def prepare_ct2_dir(models_dir: Path) -> Path:
    """models_dir/whisper-base-ct2/: the same weights as a CTranslate2 model folder.

    For faster-whisper, the natural speed and faithfulness peer of the converted checkpoint:
    model.bin joined from its parts, plus config.json, tokenizer.json and the vocabulary.
    """
    models_dir = Path(models_dir)
    target = models_dir / "whisper-base-ct2"
    if (target / "model.bin").is_file():  # the folder only appears complete (renamed below)
        return target
    part1, part2, data_dir = find_weight_parts(models_dir / ".cache")
    tmp = models_dir / f".whisper-base-ct2.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for src in data_dir.iterdir():
            if src.is_file() and not src.name.startswith("model.bin"):
                shutil.copyfile(src, tmp / src.name)
        with (tmp / "model.bin").open("wb") as out:
            for part in (part1, part2):
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover, if any
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
