"""Small scatter charts of call figures over tenure, drawn as inline SVG.

No chart library and no JavaScript: the page must open from disk. Every text part is escaped
here, so the returned markup can be placed in the page as is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from markupsafe import Markup, escape

from pipeline.catalogue import MetricInfo, lookup
from pipeline.report import fmt

# One small chart each, in this order.
CHART_METRICS = (
    "agitation",
    "agent_speech_rate_cpm",
    "agent_loudness_dbfs",
    "agent_impatience_count",
    "agent_confirmation_count",
    "agent_interruptions",
)
COHORT_COLOURS: dict[str | None, str] = {"early": "#2b6cb0", "current": "#dd6b20", None: "#a0aec0"}
CHART_W, CHART_H = 340, 190
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 12, 34


@dataclass(frozen=True)
class Chart:
    metric: str
    label: str
    unit: str
    svg: Markup


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> Callable[[float], float]:
    if hi <= lo:  # one value: put it mid-axis
        lo, hi = lo - 1, hi + 1
    return lambda v: out_lo + (v - lo) * (out_hi - out_lo) / (hi - lo)


def _x_label(v: float, x_is_date: bool) -> str:
    return pd.Timestamp(v, unit="D").strftime("%Y-%m-%d") if x_is_date else f"{v:.0f} 天"


def tenure_svg(points: pd.DataFrame, x_is_date: bool, unit: str) -> Markup:
    """A scatter of value (y) against x, one colour per cohort, dashed cohort means.

    `points` has x (days: tenure, or days since epoch), value, cohort, call_id.
    """
    w, h = CHART_W, CHART_H
    parts = [f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">']
    pts = points.dropna(subset=["x", "value"])
    if pts.empty:
        parts.append(
            f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" class="muted">'
            "无数据 no data</text></svg>"
        )
        return Markup("".join(parts))

    x_lo, x_hi = float(pts["x"].min()), float(pts["x"].max())
    y_lo, y_hi = float(pts["value"].min()), float(pts["value"].max())
    y_pad = (y_hi - y_lo) * 0.08 or max(abs(y_hi) * 0.1, 1.0)
    y_lo, y_hi = y_lo - y_pad, y_hi + y_pad
    sx = _scale(x_lo, x_hi, PAD_L + 6, w - PAD_R - 6)
    sy = _scale(y_lo, y_hi, h - PAD_B, PAD_T)

    # axes and gridlines with three y ticks
    parts.append(
        f'<line class="axis" x1="{PAD_L}" y1="{h - PAD_B}" x2="{w - PAD_R}" y2="{h - PAD_B}"/>'
    )
    parts.append(f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{h - PAD_B}"/>')
    span = y_hi - y_lo - 2 * y_pad
    digits = 0 if span >= 20 else 1 if span >= 2 else 2  # one precision for the whole axis
    for v in (y_lo + y_pad, (y_lo + y_hi) / 2, y_hi - y_pad):
        y = sy(v)
        parts.append(
            f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{w - PAD_R}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{PAD_L - 4}" y="{y + 3:.1f}" text-anchor="end">'
            f"{v + 0.0:.{digits}f}</text>"
        )

    x_ticks = [x_lo] if x_hi == x_lo else [x_lo, x_hi]
    for v, anchor in zip(x_ticks, ("start", "end"), strict=False):
        anchor = "middle" if len(x_ticks) == 1 else anchor
        parts.append(
            f'<text class="tick" x="{sx(v):.1f}" y="{h - PAD_B + 14}" '
            f'text-anchor="{anchor}">{escape(_x_label(v, x_is_date))}</text>'
        )
    axis_name = "录音日期 recorded_at" if x_is_date else "入职天数 tenure_days"
    parts.append(
        f'<text class="tick" x="{(PAD_L + w - PAD_R) / 2}" y="{h - 4}" '
        f'text-anchor="middle">{axis_name}</text>'
    )

    # cohort means as dashed lines over the cohort's own x span: the "then" and "now" levels
    for cohort in ("early", "current"):
        c = pts[pts["cohort"] == cohort]
        if c.empty:
            continue
        y = sy(float(c["value"].mean()))
        x1, x2 = sx(float(c["x"].min())) - 6, sx(float(c["x"].max())) + 6
        parts.append(
            f'<line class="mean" stroke="{COHORT_COLOURS[cohort]}" x1="{x1:.1f}" '
            f'y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}"/>'
        )

    for r in pts.itertuples():
        cohort = r.cohort if r.cohort in ("early", "current") else None
        tip = f"{r.call_id} · {_x_label(float(r.x), x_is_date)} · {fmt.num(r.value)} {unit}"
        parts.append(
            f'<circle cx="{sx(float(r.x)):.1f}" cy="{sy(float(r.value)):.1f}" r="3.6" '
            f'fill="{COHORT_COLOURS[cohort]}" class="pt-{cohort or "other"}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def tenure_charts(
    frame: pd.DataFrame, catalogue: dict[str, MetricInfo]
) -> tuple[list[Chart], bool]:
    """One chart per CHART_METRICS column in `frame` (pipeline.store.reads.chart_points), and
    whether x is the call date."""
    # Tenure is comparable across agents; without a hire date for every call, fall back to the
    # calendar so all points share one axis.
    x_is_date = bool(frame.empty or frame["tenure_days"].isna().any())
    if x_is_date:
        x = (pd.to_datetime(frame["recorded_at"]) - pd.Timestamp(0)) / pd.Timedelta(days=1)
    else:
        x = frame["tenure_days"].astype(float)
    charts = []
    for m in (m for m in CHART_METRICS if m in frame.columns):
        info = lookup(catalogue, m)
        points = pd.DataFrame(
            {
                "x": x,
                "value": pd.to_numeric(frame[m], errors="coerce"),
                "cohort": frame["cohort"],
                "call_id": frame["call_id"],
            }
        )
        charts.append(Chart(m, info.label, info.unit, tenure_svg(points, x_is_date, info.unit)))
    return charts, x_is_date
