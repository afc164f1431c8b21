"""The agent page's coaching part: a timeline of each outcome figure over the calendar, with
the coaching events marked and the three windows shaded (early career, before and after each
event), and the outcome table (docs/METRICS.md, "Coaching outcomes").

Drawn as inline SVG like the other charts; every text part is escaped where it is built. The
windows are computed by pipeline.coaching.windows, the same code the outcomes use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import pandas as pd
from markupsafe import Markup, escape

from pipeline.catalogue import MetricInfo, lookup
from pipeline.coaching.options import CoachingOptions
from pipeline.coaching.windows import EventWindows, event_windows
from pipeline.report import fmt
from pipeline.report.charts import COHORT_COLOURS
from pipeline.store import coaching as db

W, H = 700, 200
PAD_L, PAD_R, PAD_T, PAD_B = 52, 14, 22, 30
EPOCH = date(1970, 1, 1)
WINDOW_COLOURS = {"early": "#2b6cb0", "before": "#718096", "after": "#2f855a"}
VERDICT_CLASS = {"improved": "better", "worse": "worse", "no clear change": "flat"}


@dataclass(frozen=True)
class Timeline:
    figure: str
    label: str
    unit: str
    svg: Markup


@dataclass(frozen=True)
class OutcomeRow:
    event_date: str
    figure: str
    label: str
    early: str
    before: str  # mean (n calls)
    after: str
    comparison: str  # the uncoached agents' change (n agents)
    did: str  # with its interval
    effect_size: str
    verdict: str
    css: str  # better | worse | flat | thin


@dataclass(frozen=True)
class CoachingView:
    events: tuple[str, ...]  # event dates
    windows: tuple[EventWindows, ...]
    rows: tuple[OutcomeRow, ...]
    timelines: tuple[Timeline, ...]
    window_days: int
    min_calls: int


def _day(d: date) -> float:
    return float((d - EPOCH).days)


def _band(cls: str, first: date, last: date, sx, label: str) -> str:  # noqa: ANN001
    """A shaded window over whole days, first to last inclusive."""
    x1, x2 = sx(_day(first)), sx(_day(last) + 1)
    colour = WINDOW_COLOURS[cls]
    return (
        f'<rect class="band band-{cls}" data-first="{first}" data-last="{last}" '
        f'x="{x1:.1f}" y="{PAD_T}" width="{max(x2 - x1, 1):.1f}" height="{H - PAD_T - PAD_B}" '
        f'fill="{colour}" fill-opacity="0.10"><title>{escape(label)}</title></rect>'
        f'<text class="tick" x="{x1 + 2:.1f}" y="{PAD_T - 4}" fill="{colour}">'
        f"{escape(label.split(' ·')[0])}</text>"
    )


def _mean_line(values: pd.Series, first: date, last: date, sx, sy, cls: str) -> str:  # noqa: ANN001
    v = values.dropna()
    if v.empty:
        return ""
    y = sy(float(v.mean()))
    return (
        f'<line class="level level-{cls}" stroke="{WINDOW_COLOURS[cls]}" '
        f'x1="{sx(_day(first)):.1f}" x2="{sx(_day(last) + 1):.1f}" y1="{y:.1f}" y2="{y:.1f}">'
        f"<title>{escape(f'{cls} mean {fmt.num(v.mean())} ({len(v)} calls)')}</title></line>"
    )


def timeline_svg(
    points: pd.DataFrame, figure: str, windows: Sequence[EventWindows], unit: str
) -> Markup:
    """`points`: day (date), cohort, call_id and the figure's column, one row per call."""
    head = f'<svg class="chart timeline" data-figure="{escape(figure)}" viewBox="0 0 {W} {H}" '
    head += f'width="{W}" height="{H}" role="img">'
    pts = points.dropna(subset=[figure])
    if pts.empty:
        return Markup(head + f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">无数据 no data'
                      "</text></svg>")  # fmt: skip
    days = [*pts["day"], *(d for w in windows for d in (w.before_first, w.after_last))]
    x_lo, x_hi = _day(min(days)), _day(max(days)) + 1
    y_lo, y_hi = float(pts[figure].min()), float(pts[figure].max())
    pad = (y_hi - y_lo) * 0.08 or 1.0
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def sx(v: float) -> float:
        return PAD_L + (v - x_lo) * (W - PAD_L - PAD_R) / max(x_hi - x_lo, 1)

    def sy(v: float) -> float:
        return H - PAD_B - (v - y_lo) * (H - PAD_T - PAD_B) / (y_hi - y_lo)

    parts, levels = [head], []  # window means drawn last, over the points
    early = pts[pts["cohort"] == "early"]
    if not early.empty:
        first, last = min(early["day"]), max(early["day"])
        parts.append(_band("early", first, last, sx, f"早期 early · {first} – {last}"))
        levels.append(_mean_line(early[figure], first, last, sx, sy, "early"))
    for w in windows:
        for cls, first, last in (
            ("before", w.before_first, w.before_last),
            ("after", w.after_first, w.after_last),
        ):
            if last < first:
                continue
            label = f"{'前 before' if cls == 'before' else '后 after'} · {first} – {last}"
            parts.append(_band(cls, first, last, sx, label))
            inside = pts[(pts["day"] >= first) & (pts["day"] <= last)]
            levels.append(_mean_line(inside[figure], first, last, sx, sy, cls))
        x = sx(_day(w.event_date) + 0.5)
        right = x > W - PAD_R - 80  # near the right edge: the label goes to the left
        parts.append(
            f'<line class="event" data-date="{w.event_date}" x1="{x:.1f}" x2="{x:.1f}" '
            f'y1="{PAD_T - 14}" y2="{H - PAD_B}"><title>辅导 coaching {w.event_date}</title></line>'
            f'<text class="tick" x="{x - 3 if right else x + 3:.1f}" y="{PAD_T - 14}" '
            f'text-anchor="{"end" if right else "start"}">◆ {w.event_date}</text>'
        )
    parts.append(f'<line class="axis" x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}"/>')  # fmt: skip
    for v in (y_lo + pad, y_hi - pad):
        parts.append(f'<text class="tick" x="{PAD_L - 4}" y="{sy(v) + 3:.1f}" text-anchor="end">'
                     f"{fmt.num(v)}</text>")  # fmt: skip
    for v, anchor in ((x_lo, "start"), (x_hi - 1, "end")):
        label = (EPOCH + timedelta(days=int(v))).isoformat()
        parts.append(f'<text class="tick" x="{sx(v):.1f}" y="{H - PAD_B + 14}" '
                     f'text-anchor="{anchor}">{label}</text>')  # fmt: skip
    for r in pts.itertuples():
        cohort = r.cohort if r.cohort in ("early", "current") else None
        value = getattr(r, figure)
        tip = f"{r.call_id} · {r.day} · {fmt.num(value)} {unit}"
        parts.append(
            f'<circle cx="{sx(_day(r.day) + 0.5):.1f}" cy="{sy(float(value)):.1f}" r="3" '
            f'fill="{COHORT_COLOURS[cohort]}"><title>{escape(tip)}</title></circle>'
        )
    return Markup("".join(parts + levels) + "</svg>")


def _outcome_row(r: pd.Series, info: MetricInfo) -> OutcomeRow:
    def mean_n(mean: object, n: object) -> str:
        return f"{fmt.num(mean)} ({0 if fmt.is_missing(n) else int(n)})"

    verdict = "not computed yet" if fmt.is_missing(r["verdict"]) else str(r["verdict"])
    interval = (
        fmt.MISSING
        if fmt.is_missing(r["ci_low"])
        else f"{fmt.num(r['ci_low'], signed=True)} … {fmt.num(r['ci_high'], signed=True)}"
    )
    return OutcomeRow(
        event_date=fmt.date(r["event_date"]),
        figure=info.name,
        label=info.label,
        early=fmt.num(r["early_mean"]),
        before=mean_n(r["before_mean"], r["n_before"]),
        after=mean_n(r["after_mean"], r["n_after"]),
        comparison=f"{fmt.num(r['comparison_change'], signed=True)} ({0 if fmt.is_missing(r['comparison_agents']) else int(r['comparison_agents'])})",
        did=f"{fmt.num(r['did'], signed=True)} [{interval}]"
        if interval != fmt.MISSING
        else fmt.MISSING,
        effect_size=fmt.num(r["effect_size"], signed=True),
        verdict=verdict,
        css=VERDICT_CLASS.get(verdict, "thin"),
    )


def coaching_view(
    con: duckdb.DuckDBPyConnection,
    agent_id: str,
    options: CoachingOptions,
    catalogue: dict[str, MetricInfo],
) -> CoachingView:
    """The agent's coaching events, outcome rows and one timeline per outcome figure."""
    days = db.agent_events(con, agent_id)
    windows = tuple(event_windows([(agent_id, d) for d in days], options.window_days))
    outcomes = db.agent_outcomes(con, agent_id)
    rows = tuple(
        _outcome_row(r, lookup(catalogue, str(r["figure"])))
        for _, r in outcomes.iterrows()
        if not fmt.is_missing(r["figure"])
    )
    calls = db.agent_timeline(con, agent_id, options.figures)
    calls["day"] = pd.to_datetime(calls["recorded_at"]).dt.date
    timelines = []
    for f in options.figures:
        if f in calls.columns and calls[f].notna().any():
            info = lookup(catalogue, f)
            timelines.append(
                Timeline(f, info.label, info.unit, timeline_svg(calls, f, windows, info.unit))
            )
    return CoachingView(tuple(str(d) for d in days), windows, rows, tuple(timelines),
                        options.window_days, options.min_calls)  # fmt: skip
