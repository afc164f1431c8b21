"""Small recordings folders cut from the sample calls, for end-to-end tests that must stay fast
(a full sample call costs about 20 s of Whisper on two cores; a 20 s cut about 5 s)."""

from __future__ import annotations

import csv
from pathlib import Path

import soundfile as sf

from tests.conftest import SAMPLES


def sample_rows() -> list[dict[str, str]]:
    with open(SAMPLES / "manifest.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def short_calls_folder(folder: Path, call_ids: list[str], seconds: float = 20.0) -> Path:
    """`folder` with the first `seconds` of each named sample call and their manifest rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [r for r in sample_rows() if r["call_id"] in call_ids]
    for r in rows:
        data, sr = sf.read(SAMPLES / r["path"], dtype="float32", always_2d=True)
        name = Path(r["path"]).with_suffix(".wav").name
        sf.write(folder / name, data[: int(seconds * sr)], sr)
        r["path"] = name
    write_manifest(folder, rows)
    return folder


def mix_to_mono(folder: Path, call_ids: list[str]) -> None:
    """Mix these calls of a `short_calls_folder` down to one track, as older recording systems
    store calls, and mark them mono in its manifest."""
    with open(folder / "manifest.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["call_id"] in call_ids:
            data, sr = sf.read(folder / row["path"], dtype="float32", always_2d=True)
            sf.write(folder / row["path"], data.mean(axis=1), sr)
            row["channels"] = "mono"
    write_manifest(folder, rows)


def write_manifest(folder: Path, rows: list[dict[str, str]]) -> None:
    with open(folder / "manifest.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
