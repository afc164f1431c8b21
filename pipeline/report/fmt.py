"""How the report writes numbers, dates and clock times; a missing value reads '–'."""

from __future__ import annotations

import math

import pandas as pd

MISSING = "–"


def is_missing(value: object) -> bool:
    """None, NaN, NA and NaT: what a database NULL becomes on its way through pandas."""
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    )


def num(value: object, signed: bool = False) -> str:
    """A figure at a precision that suits its size."""
    if is_missing(value):
        return MISSING
    # + 0.0 turns -0.0 into 0.0
    v = float(value) + 0.0  # type: ignore[arg-type]
    if v.is_integer() and abs(v) < 1e9:  # counts read as counts
        return f"{int(v):+d}" if signed else f"{int(v)}"
    digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 1 else 2
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def date(value: object) -> str:
    return MISSING if is_missing(value) else pd.Timestamp(value).strftime("%Y-%m-%d")  # type: ignore[arg-type]


def clock(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60)
    return f"{int(m)}:{s:04.1f}"


def text(value: object) -> str:
    return "" if is_missing(value) else str(value)
