"""Calibration report: one self-contained HTML page per agent (DESIGN section 5).

A QA lead opens it straight from disk in a calibration session, so everything is inline: CSS in
the template, charts as hand-made SVG, audio clips as base64 data: URIs. No JavaScript, no CDN.

Page, top to bottom:
  header          agent, early/current call counts, date range, when generated
  drift summary   agent_drift, most worrying change first, coloured by direction and size
  tenure charts   a few key call metrics against tenure_days (recorded_at without a hire date)
  overview        current-call agent utterances flagged agitated or impatient
  call pairs      call_pairs side by side, then aligned_utterances in order: customer context,
                  early | current text, the figures that changed most, clips (early, then current)

Every transcript, id and topic goes through Jinja's autoescape; the only markup built here is
the SVG, whose text parts are escaped when it is built.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import jinja2
import numpy as np
import pandas as pd
import soundfile as sf
from markupsafe import Markup, escape

from pipeline import store
from pipeline.audio import SAMPLE_RATE, load_call
from pipeline.config import load_thresholds

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "report.html.j2"

CLIP_PAD_S = 0.3  # heard before and after the utterance, so its first syllable is not cut
FLAGGED_LIMIT = 15  # the overview stays short; the count of the rest is shown


# --------------------------------------------------------------------------------------------
# Metric catalogue for display: label, unit, and which direction is a concern
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricInfo:
    label: str  # simplified Chinese; the English column name is shown next to it
    unit: str
    worse: int = 0  # +1: a rise is a concern, -1: a fall is a concern, 0: no judgement


METRICS: dict[str, MetricInfo] = {
    "agitation": MetricInfo("激动度", "σ", +1),
    "agitation_high_share": MetricInfo("高激动时长占比", "share", +1),
    "agent_pitch_vs_baseline_st": MetricInfo("音高(相对基线)", "st"),
    "agent_speech_s": MetricInfo("坐席说话时长", "s"),
    "customer_speech_s": MetricInfo("客户说话时长", "s"),
    "agent_talk_ratio": MetricInfo("坐席说话占比", "share"),
    "agent_speech_rate_cpm": MetricInfo("坐席语速", "字/分钟", +1),
    "customer_speech_rate_cpm": MetricInfo("客户语速", "字/分钟"),
    "agent_fast_speech_share": MetricInfo("语速过快占比", "share", +1),
    "agent_pitch_median_hz": MetricInfo("坐席音高中位数", "Hz"),
    "agent_pitch_range_st": MetricInfo("坐席音域", "st"),
    "customer_pitch_median_hz": MetricInfo("客户音高中位数", "Hz"),
    "agent_loudness_dbfs": MetricInfo("坐席响度", "dBFS"),
    "agent_loudness_std_db": MetricInfo("坐席响度波动", "dB"),
    "customer_loudness_dbfs": MetricInfo("客户响度", "dBFS"),
    "dead_air_count": MetricInfo("冷场次数", "次", +1),
    "dead_air_total_s": MetricInfo("冷场总时长", "s", +1),
    "overtalk_count": MetricInfo("抢话/重叠次数", "次", +1),
    "overtalk_total_s": MetricInfo("重叠总时长", "s", +1),
    "agent_interruptions": MetricInfo("坐席打断次数", "次", +1),
    "customer_interruptions": MetricInfo("客户打断次数", "次"),
    "response_latency_median_s": MetricInfo("响应延迟中位数", "s"),
    "agent_politeness_count": MetricInfo("礼貌用语", "次", -1),
    "agent_politeness_per_min": MetricInfo("礼貌用语频率", "次/分钟", -1),
    "agent_impatience_count": MetricInfo("不耐烦用语", "次", +1),
    "agent_impatience_per_min": MetricInfo("不耐烦用语频率", "次/分钟", +1),
    "agent_sentence_chars_mean": MetricInfo("平均句长", "字"),
    "agent_long_sentence_share": MetricInfo("长句占比", "share"),
    "agent_structure_count": MetricInfo("结构化用语", "次", -1),
    "agent_jargon_count": MetricInfo("术语", "次"),
    "agent_jargon_per_100_words": MetricInfo("术语密度", "/100词"),
    "agent_confirmation_count": MetricInfo("确认理解", "次", -1),
    "customer_confusion_count": MetricInfo("客户困惑/没听懂", "次", +1),
    "agent_repeat_count": MetricInfo("坐席重复解释", "次", +1),
    "agent_chars_per_customer_turn": MetricInfo("每个客户问题的解释字数", "字"),
}

# One small chart each, in this order.
CHART_METRICS = ("agitation", "agent_speech_rate_cpm", "agent_loudness_dbfs",
                 "agent_impatience_count", "agent_confirmation_count", "agent_interruptions")


def metric_info(name: str) -> MetricInfo:
    return METRICS.get(name, MetricInfo(name, ""))


# Per-utterance deltas in aligned_utterances: label, unit, and the agent_baselines std column
# that makes them comparable (a 20 字/分钟 change and a 2 dB change are not on one scale).
@dataclass(frozen=True)
class DeltaInfo:
    label: str
    unit: str
    baseline_std: str | None  # agent_baselines column; None: already in baseline σ
    floor_key: str | None  # thresholds.toml [baseline] floor, when the agent has no baseline


DELTAS: dict[str, DeltaInfo] = {
    "delta_agitation": DeltaInfo("激动度 agitation", "σ", None, None),
    "delta_speech_rate_cpm": DeltaInfo("语速 speech rate", "字/分钟", "speech_rate_cpm_std",
                                       "min_std_rate_cpm"),
    "delta_pitch_vs_baseline_st": DeltaInfo("音高 pitch", "st", "pitch_st_std", "min_std_pitch_st"),
    "delta_loudness_db": DeltaInfo("响度 loudness", "dB", "loudness_dbfs_std",
                                   "min_std_loudness_db"),
}


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def _missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and math.isnan(value))


def fmt_num(value: object, signed: bool = False) -> str:
    """A figure at a precision that suits its size; '–' for missing."""
    if _missing(value):
        return "–"
    # + 0.0 turns -0.0 into 0.0
    v = float(value) + 0.0  # type: ignore[arg-type]
    if v.is_integer() and abs(v) < 1e9:  # counts read as counts
        return f"{int(v):+d}" if signed else f"{int(v)}"
    digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 1 else 2
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def fmt_date(value: object) -> str:
    return "–" if _missing(value) else pd.Timestamp(value).strftime("%Y-%m-%d")  # type: ignore[arg-type]


def fmt_clock(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60)
    return f"{int(m)}:{s:04.1f}"


def _text(value: object) -> str:
    return "" if _missing(value) else str(value)


# --------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------

def known_agents(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("SELECT DISTINCT agent_id FROM call_log WHERE agent_id IS NOT NULL "
                       "ORDER BY agent_id").fetchall()
    return [r[0] for r in rows]


def _check_agent(con: duckdb.DuckDBPyConnection, agent_id: str) -> None:
    agents = known_agents(con)
    if agent_id not in agents:
        shown = ", ".join(agents[:50]) + (f", ... ({len(agents)} in all)" if len(agents) > 50 else "")
        raise ValueError(f"unknown agent {agent_id!r}; known agents: {shown or 'none (empty database)'}")


@dataclass
class Header:
    agent_id: str
    hired_at: str
    n_calls: int
    n_failed: int
    n_early: int
    n_current: int
    first_call: str
    last_call: str
    early_range: str
    current_range: str
    generated_at: str


def header(con: duckdb.DuckDBPyConnection, agent_id: str) -> Header:
    calls = con.execute("SELECT recorded_at, agent_hired_at, cohort, status FROM calls "
                        "WHERE agent_id = ?", [agent_id]).df()
    ok = calls[calls["status"] == "ok"]

    def date_range(frame: pd.DataFrame) -> str:
        if frame.empty:
            return "–"
        return f"{fmt_date(frame['recorded_at'].min())} – {fmt_date(frame['recorded_at'].max())}"

    hired = calls["agent_hired_at"].dropna()
    return Header(
        agent_id=agent_id,
        hired_at=fmt_date(hired.min()) if len(hired) else "–",
        n_calls=len(ok),
        n_failed=int((calls["status"] != "ok").sum()),
        n_early=int((ok["cohort"] == "early").sum()),
        n_current=int((ok["cohort"] == "current").sum()),
        first_call=fmt_date(ok["recorded_at"].min()) if len(ok) else "–",
        last_call=fmt_date(ok["recorded_at"].max()) if len(ok) else "–",
        early_range=date_range(ok[ok["cohort"] == "early"]),
        current_range=date_range(ok[ok["cohort"] == "current"]),
        generated_at=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    )


# --------------------------------------------------------------------------------------------
# Drift summary
# --------------------------------------------------------------------------------------------

@dataclass
class DriftRow:
    metric: str
    label: str
    unit: str
    early_mean: str
    current_mean: str
    delta: str
    effect_size: str
    n: str
    verdict: str  # worse | better | neutral | flat
    level: str  # strong | medium | weak | small | na  (Cohen's conventions on |d|)
    arrow: str


def _effect_level(d: float | None) -> str:
    if d is None or math.isnan(d):
        return "na"
    a = abs(d)
    return "strong" if a >= 0.8 else "medium" if a >= 0.5 else "weak" if a >= 0.2 else "small"


def drift_summary(con: duckdb.DuckDBPyConnection, agent_id: str) -> list[DriftRow]:
    """agent_drift rows, most worrying first.

    Order: changes in the concerning direction, then metrics without a judged direction, then
    improvements; within each, by |effect_size| (rows without one last, by |delta|). So the
    top of the table is what the calibration session should talk about.
    """
    frame = con.execute("SELECT * FROM agent_drift WHERE agent_id = ?", [agent_id]).df()
    keyed = []
    for r in frame.itertuples():
        info = metric_info(r.metric)
        delta = None if _missing(r.delta) else float(r.delta)
        d = None if _missing(r.effect_size) else float(r.effect_size)
        sign = 0 if not delta else (1 if delta > 0 else -1)
        if delta is None or sign == 0:
            verdict = "flat"
        elif info.worse == 0:
            verdict = "neutral"
        else:
            verdict = "worse" if sign == info.worse else "better"
        group = {"worse": 0, "neutral": 1, "better": 2, "flat": 3}[verdict]
        strength = (0, abs(d)) if d is not None else (1, abs(delta or 0.0))
        row = DriftRow(
            metric=r.metric, label=info.label, unit=info.unit,
            early_mean=fmt_num(r.early_mean), current_mean=fmt_num(r.current_mean),
            delta=fmt_num(delta, signed=True), effect_size=fmt_num(d, signed=True),
            n=f"{int(r.n_early)} / {int(r.n_current)}", verdict=verdict, level=_effect_level(d),
            arrow={1: "▲", -1: "▼", 0: ""}[sign],
        )
        keyed.append(((group, strength[0], -strength[1], r.metric), row))
    return [row for _, row in sorted(keyed, key=lambda kv: kv[0])]


# --------------------------------------------------------------------------------------------
# Charts over tenure (inline SVG)
# --------------------------------------------------------------------------------------------

COHORT_COLOURS = {"early": "#2b6cb0", "current": "#dd6b20", None: "#a0aec0"}
CHART_W, CHART_H = 340, 190
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 12, 34


@dataclass
class Chart:
    metric: str
    label: str
    unit: str
    svg: Markup


def _scale(lo: float, hi: float, out_lo: float, out_hi: float):
    if hi <= lo:  # one value: put it mid-axis
        lo, hi = lo - 1, hi + 1
    return lambda v: out_lo + (v - lo) * (out_hi - out_lo) / (hi - lo)


def tenure_svg(points: pd.DataFrame, x_is_date: bool, unit: str) -> Markup:
    """A scatter of value (y) against x, one colour per cohort, dashed cohort means.

    `points` has x (days: tenure, or days since epoch), value, cohort, call_id. Text in it is
    escaped here, so the result can be marked safe.
    """
    w, h = CHART_W, CHART_H
    parts = [f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">']
    pts = points.dropna(subset=["x", "value"])
    if pts.empty:
        parts.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" class="muted">'
                     '无数据 no data</text></svg>')
        return Markup("".join(parts))

    x_lo, x_hi = float(pts["x"].min()), float(pts["x"].max())
    y_lo, y_hi = float(pts["value"].min()), float(pts["value"].max())
    y_pad = (y_hi - y_lo) * 0.08 or max(abs(y_hi) * 0.1, 1.0)
    y_lo, y_hi = y_lo - y_pad, y_hi + y_pad
    sx = _scale(x_lo, x_hi, PAD_L + 6, w - PAD_R - 6)
    sy = _scale(y_lo, y_hi, h - PAD_B, PAD_T)

    # axes and gridlines with three y ticks
    parts.append(f'<line class="axis" x1="{PAD_L}" y1="{h - PAD_B}" x2="{w - PAD_R}" y2="{h - PAD_B}"/>')
    parts.append(f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{h - PAD_B}"/>')
    span = y_hi - y_lo - 2 * y_pad
    digits = 0 if span >= 20 else 1 if span >= 2 else 2  # one precision for the whole axis
    for v in (y_lo + y_pad, (y_lo + y_hi) / 2, y_hi - y_pad):
        y = sy(v)
        parts.append(f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{w - PAD_R}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{PAD_L - 4}" y="{y + 3:.1f}" text-anchor="end">'
                     f'{v + 0.0:.{digits}f}</text>')

    def x_label(v: float) -> str:
        if x_is_date:
            return pd.Timestamp(v, unit="D").strftime("%Y-%m-%d")
        return f"{v:.0f} 天"

    x_ticks = [x_lo] if x_hi == x_lo else [x_lo, x_hi]
    for v, anchor in zip(x_ticks, ("start", "end"), strict=False):
        anchor = "middle" if len(x_ticks) == 1 else anchor
        parts.append(f'<text class="tick" x="{sx(v):.1f}" y="{h - PAD_B + 14}" '
                     f'text-anchor="{anchor}">{escape(x_label(v))}</text>')
    axis_name = "录音日期 recorded_at" if x_is_date else "入职天数 tenure_days"
    parts.append(f'<text class="tick" x="{(PAD_L + w - PAD_R) / 2}" y="{h - 4}" '
                 f'text-anchor="middle">{axis_name}</text>')

    # cohort means as dashed lines over the cohort's own x span: the "then" and "now" levels
    for cohort in ("early", "current"):
        c = pts[pts["cohort"] == cohort]
        if c.empty:
            continue
        y = sy(float(c["value"].mean()))
        x1, x2 = sx(float(c["x"].min())) - 6, sx(float(c["x"].max())) + 6
        parts.append(f'<line class="mean" stroke="{COHORT_COLOURS[cohort]}" x1="{x1:.1f}" '
                     f'y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}"/>')

    for r in pts.itertuples():
        cohort = r.cohort if r.cohort in ("early", "current") else None
        tip = f"{r.call_id} · {x_label(float(r.x))} · {fmt_num(r.value)} {unit}"
        parts.append(f'<circle cx="{sx(float(r.x)):.1f}" cy="{sy(float(r.value)):.1f}" r="3.6" '
                     f'fill="{COHORT_COLOURS[cohort]}" class="pt-{cohort or "other"}">'
                     f'<title>{escape(tip)}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def tenure_charts(con: duckdb.DuckDBPyConnection, agent_id: str) -> tuple[list[Chart], bool]:
    """One chart per CHART_METRICS entry; returns the charts and whether x is the call date."""
    available = {c[0] for c in con.execute("DESCRIBE call_metrics").fetchall()}
    metrics = [m for m in CHART_METRICS if m in available]
    cols = ", ".join(f"m.{m}" for m in metrics)
    frame = con.execute(
        f"SELECT m.call_id, m.cohort, m.tenure_days, c.recorded_at{', ' + cols if cols else ''} "
        "FROM call_metrics m JOIN calls c USING (call_id) WHERE m.agent_id = ? "
        "ORDER BY c.recorded_at", [agent_id]).df()
    # Tenure is comparable across agents; without a hire date for every call, fall back to the
    # calendar so all points share one axis.
    x_is_date = frame.empty or frame["tenure_days"].isna().any()
    if x_is_date:
        x = (pd.to_datetime(frame["recorded_at"]) - pd.Timestamp(0)) / pd.Timedelta(days=1)
    else:
        x = frame["tenure_days"].astype(float)
    charts = []
    for m in metrics:
        info = metric_info(m)
        points = pd.DataFrame({"x": x, "value": pd.to_numeric(frame[m], errors="coerce"),
                               "cohort": frame["cohort"], "call_id": frame["call_id"]})
        charts.append(Chart(m, info.label, info.unit, tenure_svg(points, x_is_date, info.unit)))
    return charts, bool(x_is_date)


# --------------------------------------------------------------------------------------------
# Overview: flagged utterances in current calls
# --------------------------------------------------------------------------------------------

@dataclass
class Flagged:
    call_id: str
    recorded_at: str
    at: str
    text: str
    agitation: str
    impatience_hits: int
    reasons: list[str]


def flagged_utterances(con: duckdb.DuckDBPyConnection, agent_id: str) -> tuple[list[Flagged], int]:
    """The agent's most agitated / impatient utterances in current calls, and how many in all."""
    high = float(load_thresholds()["agitation"]["high"])
    frame = con.execute(
        """SELECT u.call_id, c.recorded_at, u.start_s, u.text, u.agitation, u.impatience_hits
           FROM utterances u JOIN calls c USING (call_id)
           WHERE c.agent_id = ? AND c.cohort = 'current' AND c.status = 'ok'
             AND u.speaker = 'agent' AND (u.agitation > ? OR u.impatience_hits > 0)
           ORDER BY u.agitation DESC NULLS LAST, u.impatience_hits DESC, u.call_id, u.start_s""",
        [agent_id, high]).df()
    rows = []
    for r in frame.head(FLAGGED_LIMIT).itertuples():
        hits = 0 if _missing(r.impatience_hits) else int(r.impatience_hits)
        reasons = []
        if not _missing(r.agitation) and r.agitation > high:
            reasons.append("激动 agitated")
        if hits > 0:
            reasons.append("不耐烦用语 impatience")
        rows.append(Flagged(r.call_id, fmt_date(r.recorded_at), fmt_clock(float(r.start_s)),
                            _text(r.text), fmt_num(r.agitation, signed=True), hits, reasons))
    return rows, len(frame)


# --------------------------------------------------------------------------------------------
# Audio clips
# --------------------------------------------------------------------------------------------

@dataclass
class Clip:
    start_s: float
    end_s: float
    src: str | None = None  # data: URI when the clip could be cut
    unavailable: str | None = None  # why not, shown instead of the player
    warning: str | None = None

    @property
    def span(self) -> str:
        return f"{fmt_clock(self.start_s)}–{fmt_clock(self.end_s)} ({self.end_s - self.start_s:.1f} s)"


def encode_clip(samples: np.ndarray, sr: int, fmt: str | None = None) -> tuple[str, bytes]:
    """(mime type, file bytes). MP3 keeps the page small when libsndfile can write it
    (libsndfile >= 1.1); 16-bit WAV otherwise."""
    fmt = fmt or ("MP3" if "MP3" in sf.available_formats() else "WAV")
    buf = io.BytesIO()
    if fmt == "MP3":
        try:
            sf.write(buf, samples, sr, format="MP3")
            return "audio/mpeg", buf.getvalue()
        except (sf.LibsndfileError, RuntimeError, ValueError):
            buf = io.BytesIO()  # encoder missing at run time: fall back to WAV
    sf.write(buf, samples, sr, format="WAV", subtype="PCM_16")
    return "audio/wav", buf.getvalue()


@dataclass
class _Recording:
    samples: np.ndarray | None = None  # the agent's channel (or the mono mix) at SAMPLE_RATE
    error: str | None = None
    warning: str | None = None


@dataclass
class ClipCutter:
    """Cuts agent utterances out of recordings; each recording is decoded once."""

    con: duckdb.DuckDBPyConnection
    cache: dict[str, _Recording] = field(default_factory=dict)

    def recording(self, call_id: str) -> _Recording:
        if call_id not in self.cache:
            self.cache[call_id] = self._load(call_id)
        return self.cache[call_id]

    def _load(self, call_id: str) -> _Recording:
        row = self.con.execute("SELECT folder, path, channels, audio_sha256 FROM calls "
                               "WHERE call_id = ?", [call_id]).fetchone()
        if row is None or _missing(row[1]):
            return _Recording(error="call has no recording path in the database")
        folder, rel, channels, sha = row
        path = Path(folder) / rel if not _missing(folder) else Path(rel)
        if not path.is_file():
            return _Recording(error=f"file not found: {path}")
        layout = channels if channels in ("agent_left", "agent_right", "mono") else None
        try:
            audio = load_call(path, layout)
        except (ValueError, OSError, RuntimeError) as e:  # AudioError is a ValueError
            return _Recording(error=f"{type(e).__name__}: {e}")
        samples = audio.mono if audio.layout == "mono" else audio.agent
        warning = None
        if not _missing(sha) and audio.sha256 != sha:
            warning = "recording changed since it was processed; clip times may be off"
        return _Recording(samples=samples, warning=warning)

    def clip(self, call_id: str, start_s: float, end_s: float) -> Clip:
        clip = Clip(start_s, end_s)
        if _missing(start_s) or _missing(end_s) or end_s <= start_s:
            clip.unavailable = "no clip times"
            return clip
        rec = self.recording(call_id)
        if rec.samples is None:
            clip.unavailable = rec.error
            return clip
        a = max(int((start_s - CLIP_PAD_S) * SAMPLE_RATE), 0)
        b = min(int(round((end_s + CLIP_PAD_S) * SAMPLE_RATE)), len(rec.samples))
        if b - a < SAMPLE_RATE // 20:
            clip.unavailable = (f"clip lies outside the recording "
                                f"({len(rec.samples) / SAMPLE_RATE:.1f} s long)")
            return clip
        mime, data = encode_clip(rec.samples[a:b], SAMPLE_RATE)
        clip.src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        clip.warning = rec.warning
        return clip


# --------------------------------------------------------------------------------------------
# Call pairs and aligned utterances
# --------------------------------------------------------------------------------------------

@dataclass
class Change:
    label: str
    column: str
    value: str  # signed, with unit
    direction: str  # up | down
    big: bool  # at least one baseline standard deviation


@dataclass
class Aligned:
    early_customer: str
    current_customer: str
    early_text: str
    current_text: str
    similarity: str
    changes: list[Change]
    early_clip: Clip
    current_clip: Clip


@dataclass
class CallSide:
    call_id: str
    recorded_at: str
    tenure: str
    topic: str
    figures: list[tuple[str, str]]  # (label, value with unit)


@dataclass
class PairView:
    pair_id: str
    topic: str
    similarity: str
    early: CallSide
    current: CallSide
    aligned: list[Aligned]


def delta_scales(con: duckdb.DuckDBPyConnection, agent_id: str) -> dict[str, float]:
    """delta_* column -> the agent's baseline spread of that figure, to rank changes fairly."""
    floors = load_thresholds()["baseline"]
    base = con.execute("SELECT * FROM agent_baselines WHERE agent_id = ?", [agent_id]).df()
    scales = {}
    for col, info in DELTAS.items():
        scale = 1.0
        if info.baseline_std:
            value = base[info.baseline_std].iloc[0] if len(base) else None
            scale = float(value) if not _missing(value) and value > 0 else float(floors[info.floor_key])
        scales[col] = scale
    return scales


def biggest_changes(row: pd.Series, scales: dict[str, float]) -> list[Change]:
    """Every non-null delta_* figure of an aligned pair, largest change first.

    "Largest" is |delta| over the agent's own baseline spread of the figure, since the deltas
    have different units; unknown delta_* columns count in their own unit.
    """
    ranked = []
    for col in row.index:
        if not col.startswith("delta_") or _missing(row[col]):
            continue
        value = float(row[col])
        info = DELTAS.get(col, DeltaInfo(col.removeprefix("delta_"), "", None, None))
        z = abs(value) / scales.get(col, 1.0)
        change = Change(info.label, col, f"{fmt_num(value, signed=True)} {info.unit}".strip(),
                        "up" if value > 0 else "down", z >= 1.0)
        ranked.append((-z, col, change))
    return [c for *_, c in sorted(ranked, key=lambda t: (t[0], t[1]))]


PAIR_FIGURES = ("agitation", "agent_speech_rate_cpm", "agent_impatience_count",
                "agent_confirmation_count")


def _call_side(con: duckdb.DuckDBPyConnection, call_id: str) -> CallSide:
    row = con.execute("SELECT recorded_at, tenure_days, topic FROM calls WHERE call_id = ?",
                      [call_id]).fetchone()
    recorded, tenure, topic = row if row else (None, None, None)
    figs = con.execute(f"SELECT {', '.join(PAIR_FIGURES)} FROM call_metrics WHERE call_id = ?",
                       [call_id]).fetchone()
    figures = []
    for name, value in zip(PAIR_FIGURES, figs or [None] * len(PAIR_FIGURES), strict=True):
        info = metric_info(name)
        figures.append((info.label, f"{fmt_num(value)} {info.unit}"))
    return CallSide(call_id, fmt_date(recorded), "–" if _missing(tenure) else f"{int(tenure)} 天",
                    _text(topic), figures)


def call_pairs(con: duckdb.DuckDBPyConnection, agent_id: str, max_pairs: int | None,
               cutter: ClipCutter) -> tuple[list[PairView], int]:
    """The agent's pairs, most similar first (capped at max_pairs), and how many there are."""
    pairs = con.execute("SELECT * FROM call_pairs WHERE agent_id = ? "
                        "ORDER BY similarity DESC NULLS LAST, pair_id", [agent_id]).df()
    scales = delta_scales(con, agent_id)
    shown = pairs if max_pairs is None else pairs.head(max(max_pairs, 0))
    views = []
    for p in shown.itertuples():
        rows = con.execute("SELECT * FROM aligned_utterances WHERE pair_id = ? "
                           "ORDER BY early_utterance_id, current_utterance_id", [p.pair_id]).df()
        aligned = [
            Aligned(
                early_customer=_text(r["early_customer_text"]),
                current_customer=_text(r["current_customer_text"]),
                early_text=_text(r["early_text"]), current_text=_text(r["current_text"]),
                similarity=fmt_num(r["similarity"]),
                changes=biggest_changes(r, scales),
                early_clip=cutter.clip(p.early_call_id, r["early_start_s"], r["early_end_s"]),
                current_clip=cutter.clip(p.current_call_id, r["current_start_s"], r["current_end_s"]),
            )
            for _, r in rows.iterrows()
        ]
        views.append(PairView(p.pair_id, _text(p.topic), fmt_num(p.similarity),
                              _call_side(con, p.early_call_id), _call_side(con, p.current_call_id),
                              aligned))
    return views, len(pairs)


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

def _environment() -> jinja2.Environment:
    # autoescape on for everything: transcripts are customer speech and may contain anything.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def build_report(con: duckdb.DuckDBPyConnection, agent_id: str, max_pairs: int | None = None) -> str:
    """The calibration report for one agent as a self-contained HTML page."""
    _check_agent(con, agent_id)
    charts, x_is_date = tenure_charts(con, agent_id)
    flagged, n_flagged = flagged_utterances(con, agent_id)
    pairs, n_pairs = call_pairs(con, agent_id, max_pairs, ClipCutter(con))
    return _environment().get_template(TEMPLATE_NAME).render(
        head=header(con, agent_id),
        drift=drift_summary(con, agent_id),
        charts=charts,
        x_is_date=x_is_date,
        colours=COHORT_COLOURS,
        flagged=flagged,
        n_flagged=n_flagged,
        agitation_high=float(load_thresholds()["agitation"]["high"]),
        pairs=pairs,
        n_pairs=n_pairs,
        pad_s=CLIP_PAD_S,
    )


def write_report(db: str | Path, agent_id: str, out: str | Path,
                 max_pairs: int | None = None) -> Path:
    """Write the report for `agent_id` from the database file `db` (opened read-only)."""
    con = store.connect(db, read_only=True)  # FileNotFoundError when there is no database
    try:
        html = build_report(con, agent_id, max_pairs)
    finally:
        con.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
