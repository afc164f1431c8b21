"""The metric catalogue: label, unit and direction of every stored figure, from one data file.

pipeline/data/metrics.toml is the only list of them. The report takes its labels from it, and
tests/test_catalogue.py holds it against `CallFigures` and docs/METRICS.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "metrics.toml"

Level = Literal["utterance", "call"]
# behaviour: follows the agent. recording: follows the recording chain or the transcriber as
# much as the agent (raw loudness, transcription coverage): shown, never judged.
Kind = Literal["behaviour", "recording"]
DIRECTIONS = (-1, 0, 1)
_KEYS = {"label": str, "unit": str, "direction": int, "level": str, "doc": str}
_OPTIONAL = {"kind": str}


class CatalogueError(ValueError):
    """The catalogue file is wrong; the message names the file and the metric."""


@dataclass(frozen=True)
class MetricInfo:
    name: str  # the column name
    label: str  # simplified Chinese; the English column name is shown next to it
    unit: str
    direction: int = 0  # +1: a rise is a concern, -1: a fall is, 0: no judgement
    level: Level = "call"
    doc: str = ""
    kind: Kind = "behaviour"

    @property
    def judged(self) -> bool:
        """Whether a change is coloured as the agent's: a direction, and not a recording property."""
        return self.direction != 0 and self.kind == "behaviour"


def _entry(path: Path, name: str, table: Any) -> MetricInfo:
    if not isinstance(table, dict):
        raise CatalogueError(f"{path}: [{name}] must be a table")
    if not set(_KEYS) <= set(table) <= set(_KEYS) | set(_OPTIONAL):
        raise CatalogueError(
            f"{path}: [{name}] needs the keys {', '.join(_KEYS)} (and may have "
            f"{', '.join(_OPTIONAL)}); has {', '.join(table)}"
        )
    for key, kind in (_KEYS | _OPTIONAL).items():
        # bool is an int to Python, but `direction = true` is a typo, not +1
        if key in table and (not isinstance(table[key], kind) or isinstance(table[key], bool)):
            raise CatalogueError(f"{path}: [{name}] {key} must be a {kind.__name__}")
    if table["direction"] not in DIRECTIONS:
        raise CatalogueError(f"{path}: [{name}] direction must be one of {DIRECTIONS}")
    if table["level"] not in get_args(Level):
        raise CatalogueError(f"{path}: [{name}] level must be one of {get_args(Level)}")
    if table.get("kind", "behaviour") not in get_args(Kind):
        raise CatalogueError(f"{path}: [{name}] kind must be one of {get_args(Kind)}")
    return MetricInfo(name=name, **table)


def load_catalogue(path: Path) -> dict[str, MetricInfo]:
    """Metric name -> its entry, in file order."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise CatalogueError(f"{path}: not valid TOML: {e}") from None
    return {name: _entry(path, name, table) for name, table in raw.items()}


def lookup(catalogue: dict[str, MetricInfo], name: str) -> MetricInfo:
    """`name`'s entry; a figure the catalogue lacks is shown under its column name, unjudged."""
    return catalogue.get(name) or MetricInfo(name=name, label=name, unit="")
