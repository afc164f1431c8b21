"""Run settings (environment / CLI) and the editable thresholds and phrase lists.

Settings come from CALLREVIEW_* environment variables or CLI flags; thresholds and phrase
lists come from TOML data files users can edit (pipeline/data/*.toml, or a copy named by
CALLREVIEW_THRESHOLDS / CALLREVIEW_PHRASES).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(__file__).resolve().parent / "data"


class Settings(BaseSettings):
    """Where things are and how to run. Every field can be set as CALLREVIEW_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="CALLREVIEW_")

    db: Path = Path("callreview.duckdb")
    model: str | None = None  # None: the prepared default (models/whisper-base.pt)
    device: str | None = None  # None: cuda when available, else cpu
    thresholds: Path = DATA_DIR / "thresholds.toml"
    phrases: Path = DATA_DIR / "phrases.toml"
    jargon: Path = DATA_DIR / "jargon.txt"
    asr_batch_size: int = 8


@dataclass(frozen=True)
class PhraseList:
    name: str
    speaker: str
    phrases: tuple[str, ...]


def _read_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


@lru_cache(maxsize=8)
def load_thresholds(path: Path | None = None) -> dict[str, dict[str, float]]:
    """Sections of thresholds.toml, e.g. load_thresholds()["tone"]["dead_air_min_s"]."""
    return _read_toml(path or Settings().thresholds)


@lru_cache(maxsize=8)
def load_phrases(path: Path | None = None) -> dict[str, PhraseList]:
    raw = _read_toml(path or Settings().phrases)
    return {
        name: PhraseList(name, sec.get("speaker", "agent"), tuple(sec["phrases"]))
        for name, sec in raw.items()
    }


@lru_cache(maxsize=8)
def load_jargon(path: Path | None = None) -> tuple[str, ...]:
    lines = (path or Settings().jargon).read_text(encoding="utf-8").splitlines()
    terms = (line.split("#", 1)[0].strip() for line in lines)
    return tuple(t for t in terms if t)
