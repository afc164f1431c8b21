"""Per coached agent, event and figure: the outcome row of `coaching_results` (docs/METRICS.md,
"Coaching outcomes"), from one frame of call figures of every agent.

`calls` holds one row per ok call: agent_id, recorded_at, cohort and the figure columns (the
call_metrics view with the call's date). Every agent's calls are needed, not only the coached
agents': the uncoached agents over the same dates are the comparison.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict
from datetime import date

import numpy as np
import pandas as pd

from pipeline.catalogue import MetricInfo
from pipeline.coaching.options import CoachingOptions
from pipeline.coaching.records import CoachingResult
from pipeline.coaching.stats import TOO_FEW, Samples, estimate, verdict
from pipeline.coaching.windows import EventWindows, comparison_agents, event_windows, in_days


def directions(figures: Sequence[str], catalogue: Mapping[str, MetricInfo]) -> dict[str, int]:
    """Which way each outcome figure is a concern (+1: a rise), from the metric catalogue; a
    figure the catalogue does not judge cannot be called improved or worse, nor can a recording
    property (it moves when the recording chain changes, whatever the coaching did)."""
    out = {}
    for f in figures:
        info = catalogue.get(f)
        if info is None or info.direction == 0:
            raise ValueError(
                f"[coaching] figures: {f!r} has no direction in the metric catalogue "
                "(pipeline/data/metrics.toml); an outcome needs to know which way is better"
            )
        if info.kind != "behaviour":
            raise ValueError(
                f"[coaching] figures: {f!r} is a recording property in the metric catalogue "
                "(pipeline/data/metrics.toml), not the agent's behaviour"
            )
        out[f] = info.direction
    return out


def _rng(options: CoachingOptions, w: EventWindows, figure: str) -> np.random.Generator:
    """A generator of its own per outcome: recomputing some agents gives the others' numbers
    unchanged, and the same data the same interval."""
    key = zlib.crc32(f"{w.agent_id}|{w.event_date.isoformat()}|{figure}".encode())
    return np.random.default_rng([options.seed, key])


def _comparison(calls: pd.DataFrame, figure: str) -> tuple[Samples, int]:
    """The comparison agents' calls of both windows, each relative to its agent's mean over
    them; agents without a call on both sides are left out. (samples, agents used)."""
    c = calls.dropna(subset=[figure])
    sides = c.groupby("agent_id")["side"].nunique()
    c = c[c["agent_id"].isin(sides.index[sides == 2])]
    centred = c[figure] - c.groupby("agent_id")[figure].transform("mean")
    before = centred[c["side"] == "before"].to_numpy(dtype=float)
    after = centred[c["side"] == "after"].to_numpy(dtype=float)
    return Samples(before, after), int(c["agent_id"].nunique())


def _with_sides(calls: pd.DataFrame, w: EventWindows) -> pd.DataFrame:
    days = calls["day"]
    before, after = (
        in_days(days, w.before_first, w.before_last),
        in_days(days, w.after_first, w.after_last),
    )
    out = calls[before | after].copy()
    out["side"] = np.where(before[before | after], "before", "after")
    return out


def outcome_rows(
    calls: pd.DataFrame,
    events: Sequence[tuple[str, date]],
    options: CoachingOptions,
    catalogue: Mapping[str, MetricInfo],
    agents: Collection[str] | None = None,
) -> pd.DataFrame:
    """One CoachingResult row per event of `agents` (all coached agents when None) and figure."""
    sign = directions(options.figures, catalogue)
    calls = calls.assign(day=pd.to_datetime(calls["recorded_at"]).dt.date)
    all_agents = sorted(calls["agent_id"].dropna().unique())
    events_by_agent: dict[str, list[date]] = {}
    for agent_id, day in events:
        events_by_agent.setdefault(agent_id, []).append(day)
    rows = []
    for w in event_windows(events, options.window_days):
        if agents is not None and w.agent_id not in agents:
            continue
        own = calls[calls["agent_id"] == w.agent_id]
        early = own[own["cohort"] == "early"]
        mine = _with_sides(own, w)
        others = _with_sides(
            calls[calls["agent_id"].isin(comparison_agents(w, all_agents, events_by_agent))], w
        )
        for figure in options.figures:
            rows.append(_outcome(w, figure, sign[figure], early[figure], mine, others, options))
    return pd.DataFrame(
        [asdict(r) for r in rows], columns=list(CoachingResult.__dataclass_fields__)
    )


def _outcome(
    w: EventWindows,
    figure: str,
    direction: int,
    early: pd.Series,
    mine: pd.DataFrame,
    others: pd.DataFrame,
    options: CoachingOptions,
) -> CoachingResult:
    values = mine.dropna(subset=[figure])
    coached = Samples(
        values.loc[values["side"] == "before", figure].to_numpy(dtype=float),
        values.loc[values["side"] == "after", figure].to_numpy(dtype=float),
    )
    comparison, n_comparison = _comparison(others, figure)
    n_before, n_after = len(coached.before), len(coached.after)
    early = early.dropna()
    row = dict(
        agent_id=w.agent_id,
        event_date=w.event_date,
        figure=figure,
        direction=direction,
        before_first=w.before_first,
        before_last=w.before_last,
        after_first=w.after_first,
        after_last=w.after_last,
        n_early=len(early),
        early_mean=float(early.mean()) if len(early) else None,
        n_before=n_before,
        before_mean=float(coached.before.mean()) if n_before else None,
        n_after=n_after,
        after_mean=float(coached.after.mean()) if n_after else None,
        comparison_agents=n_comparison if comparison.usable() else 0,
        confidence=options.confidence,
        min_calls=options.min_calls,
    )
    if not coached.usable():
        return CoachingResult(**row, verdict=TOO_FEW)
    est = estimate(
        coached, comparison, options.confidence, options.resamples, _rng(options, w, figure)
    )
    return CoachingResult(
        **row,
        change=est.change,
        comparison_change=est.comparison_change,
        did=est.did,
        ci_low=est.low,
        ci_high=est.high,
        effect_size=est.effect_size,
        verdict=verdict(est, direction, n_before, n_after, options.min_calls),
    )
