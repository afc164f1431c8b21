"""QA rule flags: each rule of pipeline/data/rules.toml (语速过快, 静音过长, 抢话, 服务禁用语 ...)
compares one call metric with a threshold, the way Chinese 质检 rule engines do. Flags are
derived: recomputed for every ok call on every run, so an edited threshold applies to the whole
history at once."""

from __future__ import annotations

import operator
from collections.abc import Callable

import pandas as pd

from pipeline.config import Rule
from pipeline.rows import CallFlag

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def check_rules(rules: tuple[Rule, ...], known_metrics: set[str]) -> None:
    """Refuse a rule the data cannot answer, before any call is processed."""
    for rule in rules:
        if rule.op not in OPS:
            raise ValueError(
                f"rule {rule.name!r}: op must be one of {' '.join(OPS)}, got {rule.op!r}"
            )
        if rule.metric not in known_metrics:
            raise ValueError(f"rule {rule.name!r}: unknown metric {rule.metric!r}")


def flag_calls(metrics: pd.DataFrame, rules: tuple[Rule, ...]) -> list[CallFlag]:
    """One flag per call and rule; `hit` is null when the call has no value for the metric."""
    check_rules(rules, set(metrics.columns))
    flags = []
    for row in metrics.itertuples(index=False):
        for rule in rules:
            value = getattr(row, rule.metric)
            known = value is not None and not pd.isna(value)
            flags.append(
                CallFlag(
                    call_id=row.call_id,
                    rule=rule.name,
                    label=rule.label,
                    metric=rule.metric,
                    op=rule.op,
                    threshold=rule.threshold,
                    value=float(value) if known else None,
                    hit=OPS[rule.op](float(value), rule.threshold) if known else None,
                )
            )
    return flags
