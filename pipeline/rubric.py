"""The calibration rubric (pipeline/data/rubric.toml): the items evaluators score on each aligned
answer pair, their score range, the drifted verdict, and the callreview figures each item is
expected to track. The report's form, the import's validation and the agreement summary all
read it from here, so an item added to the file shows up everywhere at once.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_RUBRIC = Path(__file__).resolve().parent / "data" / "rubric.toml"
VERDICT = "drifted"  # calibration_scores.item of the pair-level verdict (score 1 yes, 0 no)
_KEY = re.compile(r"[a-z][a-z0-9_]*")


class RubricError(ValueError):
    """The rubric file is wrong; the message names the file and the entry."""


@dataclass(frozen=True)
class Item:
    key: str
    label: str
    en: str
    hint: str = ""
    figures: tuple[tuple[str, int], ...] = ()  # (figure column, expected sign)


@dataclass(frozen=True)
class Rubric:
    items: tuple[Item, ...]
    verdict: Item
    low: int = 1
    high: int = 5
    source: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(i.key for i in self.items)

    def item(self, key: str) -> Item:
        for i in (*self.items, self.verdict):
            if i.key == key:
                return i
        raise KeyError(key)

    def as_page_data(self) -> dict[str, Any]:
        """What the report's scoring script needs, as plain JSON-ready values."""
        return {
            "low": self.low,
            "high": self.high,
            "items": [{"key": i.key, "label": i.label, "en": i.en} for i in self.items],
        }


def _item(path: Path, key: str, table: Any) -> Item:
    if not isinstance(table, dict) or not {"label", "en"} <= set(table):
        raise RubricError(f"{path}: [{key}] needs label and en")
    unknown = set(table) - {"label", "en", "hint", "figures"}
    if unknown:
        raise RubricError(f"{path}: [{key}] has unknown keys {sorted(unknown)}")
    figures = table.get("figures", {})
    if not isinstance(figures, dict) or any(s not in (-1, 1) for s in figures.values()):
        raise RubricError(f"{path}: [{key}] figures must map a column to -1 or 1")
    return Item(
        key=key,
        label=str(table["label"]),
        en=str(table["en"]),
        hint=str(table.get("hint", "")),
        figures=tuple((str(c), int(s)) for c, s in figures.items()),
    )


def load_rubric(path: Path = DEFAULT_RUBRIC) -> Rubric:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise RubricError(f"rubric file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise RubricError(f"{path}: not valid TOML: {e}") from None
    scale = raw.get("scale", {})
    low, high = scale.get("min", 1), scale.get("max", 5)
    if not (isinstance(low, int) and isinstance(high, int) and low < high):
        raise RubricError(f"{path}: [scale] min and max must be integers with min < max")
    items = raw.get("items", {})
    if not isinstance(items, dict) or not items:
        raise RubricError(f"{path}: no [items.*] to score")
    for key in items:
        if not _KEY.fullmatch(key) or key == VERDICT:
            raise RubricError(f"{path}: item key {key!r} must be lower-case ascii, not {VERDICT}")
    verdict = _item(path, VERDICT, raw.get("verdict", {"label": "是否退化", "en": VERDICT}))
    return Rubric(
        items=tuple(_item(path, k, v) for k, v in items.items()),
        verdict=verdict,
        low=low,
        high=high,
        source=str(path),
    )
