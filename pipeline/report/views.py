"""Query results -> the small records the template renders.

Header facts, drift rows, flagged utterances and call pairs, every figure already written as
text. Frames come from pipeline.store.reads; nothing here touches the database or HTML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from pipeline.catalogue import MetricInfo, lookup
from pipeline.config import BaselineOptions
from pipeline.report import fmt
from pipeline.report.clips import Clip, ClipCutter

FLAGGED_LIMIT = 15  # the overview stays short; the count of the rest is shown
# Shown under each call of a pair, in this order.
PAIR_FIGURES = (
    "agitation",
    "agent_speech_rate_cpm",
    "agent_impatience_count",
    "agent_confirmation_count",
)


def check_agent(agent_id: str, agents: list[str]) -> None:
    """ValueError naming the known agents, so a typo in --agent is easy to fix."""
    if agent_id not in agents:
        more = f", ... ({len(agents)} in all)" if len(agents) > 50 else ""
        shown = ", ".join(agents[:50]) + more
        raise ValueError(
            f"unknown agent {agent_id!r}; known agents: {shown or 'none (empty database)'}"
        )


# --- Header ----------------------------------------------------------------------------------


@dataclass(frozen=True)
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
    # mono calls whose agent and customer may be swapped (speaker_attribution.low_confidence)
    uncertain_calls: tuple[str, ...] = ()


def _date_range(calls: pd.DataFrame) -> str:
    if calls.empty:
        return fmt.MISSING
    return f"{fmt.date(calls['recorded_at'].min())} – {fmt.date(calls['recorded_at'].max())}"


def header(agent_id: str, calls: pd.DataFrame, generated_at: datetime) -> Header:
    """From reads.agent_calls: counts and date ranges of the agent's ok calls, and those whose
    speakers may be swapped."""
    ok = calls[calls["status"] == "ok"]
    hired = calls["agent_hired_at"].dropna()
    return Header(
        agent_id=agent_id,
        hired_at=fmt.date(hired.min()) if len(hired) else fmt.MISSING,
        n_calls=len(ok),
        n_failed=int((calls["status"] != "ok").sum()),
        n_early=int((ok["cohort"] == "early").sum()),
        n_current=int((ok["cohort"] == "current").sum()),
        first_call=fmt.date(ok["recorded_at"].min()) if len(ok) else fmt.MISSING,
        last_call=fmt.date(ok["recorded_at"].max()) if len(ok) else fmt.MISSING,
        early_range=_date_range(ok[ok["cohort"] == "early"]),
        current_range=_date_range(ok[ok["cohort"] == "current"]),
        generated_at=generated_at.strftime("%Y-%m-%d %H:%M %Z"),
        uncertain_calls=tuple(
            sorted(ok.loc[ok["low_confidence"].fillna(False).astype(bool), "call_id"])
        ),
    )


# --- Drift summary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftRow:
    metric: str
    label: str
    unit: str
    early_mean: str
    current_mean: str
    delta: str
    effect_size: str
    n: str
    verdict: str  # worse | better | neutral | flat | recording
    level: str  # strong | medium | weak | small | na  (Cohen's conventions on |d|)
    arrow: str


VERDICT_ORDER = {"worse": 0, "neutral": 1, "better": 2, "flat": 3, "recording": 4}


def mixed_versions(frame: pd.DataFrame) -> bool:
    """From reads.agent_drift: the agent's early and current calls were transcribed differently."""
    return "mixed_versions" in frame and bool(frame["mixed_versions"].fillna(False).any())


def _effect_level(d: float | None) -> str:
    if d is None or math.isnan(d):
        return "na"
    a = abs(d)
    return "strong" if a >= 0.8 else "medium" if a >= 0.5 else "weak" if a >= 0.2 else "small"


def verdict(sign: int, info: MetricInfo) -> str:
    """How a change of `info`'s figure is shown: a recording property is never judged (it moves
    with the recording chain: docs/METRICS.md, "Drift"), nor a figure without a direction."""
    if info.kind == "recording":
        return "recording"
    if sign == 0:
        return "flat"
    if info.direction == 0:
        return "neutral"
    return "worse" if sign == info.direction else "better"


def drift_summary(frame: pd.DataFrame, catalogue: dict[str, MetricInfo]) -> list[DriftRow]:
    """reads.agent_drift rows, most worrying first.

    Order: changes in the concerning direction, then metrics without a judged direction, then
    improvements, then recording properties; within each, by |effect_size| (rows without one
    last, by |delta|). So the top of the table is what the calibration session should talk about.
    """
    keyed = []
    for r in frame.itertuples():
        info = lookup(catalogue, r.metric)
        delta = None if fmt.is_missing(r.delta) else float(r.delta)
        d = None if fmt.is_missing(r.effect_size) else float(r.effect_size)
        sign = 0 if not delta else (1 if delta > 0 else -1)
        shown = verdict(sign, info)
        strength = (0, abs(d)) if d is not None else (1, abs(delta or 0.0))
        row = DriftRow(
            metric=r.metric,
            label=info.label,
            unit=info.unit,
            early_mean=fmt.num(r.early_mean),
            current_mean=fmt.num(r.current_mean),
            delta=fmt.num(delta, signed=True),
            effect_size=fmt.num(d, signed=True),
            n=f"{int(r.n_early)} / {int(r.n_current)}",
            verdict=shown,
            level=_effect_level(d),
            arrow={1: "▲", -1: "▼", 0: ""}[sign],
        )
        keyed.append(((VERDICT_ORDER[shown], strength[0], -strength[1], r.metric), row))
    return [row for _, row in sorted(keyed, key=lambda kv: kv[0])]


# --- Overview: flagged utterances in current calls -------------------------------------------


@dataclass(frozen=True)
class Flagged:
    call_id: str
    recorded_at: str
    at: str
    text: str
    agitation: str
    impatience_hits: int
    reasons: tuple[str, ...]


# The veto behaviours an utterance is listed for (rules talking_down, argues_after_correction).
BEHAVIOUR_REASONS = {"talking_down": "服务姿态过高 talking down", "argues": "知错不改 argues"}


def _pairs(behaviours: str) -> list[tuple[str, str]]:
    """'talking_down: 这是常识; argues: 我没说错' -> [(kind, words), ...], known kinds only"""
    parts = (p.partition(": ") for p in behaviours.split("; "))
    return [(kind, words) for kind, _, words in parts if kind in BEHAVIOUR_REASONS]


def flagged(frame: pd.DataFrame, agitation_high: float) -> list[Flagged]:
    """The first FLAGGED_LIMIT rows of reads.flagged_utterances, with why each is there."""
    rows = []
    for r in frame.head(FLAGGED_LIMIT).itertuples():
        hits = 0 if fmt.is_missing(r.impatience_hits) else int(r.impatience_hits)
        reasons = []
        if not fmt.is_missing(r.agitation) and r.agitation > agitation_high:
            reasons.append("激动 agitated")
        if hits > 0:
            reasons.append("不耐烦用语 impatience")
        behaviours = getattr(r, "behaviours", None)  # "talking_down: 这是常识; argues: ..."
        if not fmt.is_missing(behaviours):
            reasons += [BEHAVIOUR_REASONS[k] + f" «{w}»" for k, w in _pairs(str(behaviours))]
        rows.append(
            Flagged(
                call_id=r.call_id,
                recorded_at=fmt.date(r.recorded_at),
                at=fmt.clock(float(r.start_s)),
                text=fmt.text(r.text),
                agitation=fmt.num(r.agitation, signed=True),
                impatience_hits=hits,
                reasons=tuple(reasons),
            )
        )
    return rows


# --- Call pairs and aligned utterances -------------------------------------------------------


# The delta_* columns of aligned_utterances are differences of utterance figures, not catalogue
# metrics: their chip labels name the figure in both languages, and a dBFS difference is in dB.
# baseline_std is the agent_baselines column that puts them on one scale (a 20 字/分钟 change
# and a 2 dB change are not comparable); floor is the BaselineOptions field used without one.
@dataclass(frozen=True)
class DeltaInfo:
    label: str
    unit: str
    baseline_std: str | None = None  # None: already in baseline σ
    floor: str | None = None


DELTAS: dict[str, DeltaInfo] = {
    "delta_agitation": DeltaInfo("激动度 agitation", "σ"),
    "delta_speech_rate_cpm": DeltaInfo(
        "语速 speech rate", "字/分钟", "speech_rate_cpm_std", "min_std_rate_cpm"
    ),
    "delta_pitch_vs_baseline_st": DeltaInfo("音高 pitch", "st", "pitch_st_std", "min_std_pitch_st"),
    "delta_loudness_db": DeltaInfo(
        "响度 loudness", "dB", "loudness_dbfs_std", "min_std_loudness_db"
    ),
}


@dataclass(frozen=True)
class Change:
    label: str
    column: str
    value: str  # signed, with unit
    direction: str  # up | down
    big: bool  # at least one baseline standard deviation


@dataclass(frozen=True)
class Aligned:
    early_customer: str
    current_customer: str
    early_text: str
    current_text: str
    similarity: str
    changes: tuple[Change, ...]
    early_clip: Clip
    current_clip: Clip
    early_utterance_id: int = -1  # with the pair id, the key evaluators' scores are stored by
    current_utterance_id: int = -1


@dataclass(frozen=True)
class CallSide:
    call_id: str
    recorded_at: str
    tenure: str
    topic: str
    figures: tuple[tuple[str, str], ...]  # (label, value with unit)


@dataclass(frozen=True)
class PairView:
    pair_id: str
    topic: str
    similarity: str
    early: CallSide
    current: CallSide
    aligned: tuple[Aligned, ...]


def delta_scales(baseline: pd.DataFrame, floors: BaselineOptions) -> dict[str, float]:
    """delta_* column -> the agent's baseline spread of that figure (reads.agent_baseline), to
    rank changes fairly; the configured floor when the agent has none."""
    scales = {}
    for col, info in DELTAS.items():
        scale = 1.0
        if info.baseline_std and info.floor:
            value = baseline[info.baseline_std].iloc[0] if len(baseline) else None
            usable = not fmt.is_missing(value) and value > 0
            scale = float(value) if usable else float(getattr(floors, info.floor))
        scales[col] = scale
    return scales


def biggest_changes(row: pd.Series, scales: dict[str, float]) -> tuple[Change, ...]:
    """Every non-null delta_* figure of an aligned pair, largest change first.

    "Largest" is |delta| over the agent's own baseline spread of the figure, since the deltas
    have different units; unknown delta_* columns count in their own unit.
    """
    ranked = []
    for col in row.index:
        if not col.startswith("delta_") or fmt.is_missing(row[col]):
            continue
        value = float(row[col])
        info = DELTAS.get(col, DeltaInfo(col.removeprefix("delta_"), ""))
        z = abs(value) / scales.get(col, 1.0)
        shown = f"{fmt.num(value, signed=True)} {info.unit}".strip()
        ranked.append(
            (-z, col, Change(info.label, col, shown, "up" if value > 0 else "down", z >= 1.0))
        )
    return tuple(c for *_, c in sorted(ranked, key=lambda t: (t[0], t[1])))


def call_side(call_id: str, row: tuple | None, catalogue: dict[str, MetricInfo]) -> CallSide:
    """From reads.call_side(..., PAIR_FIGURES): (recorded_at, tenure_days, topic, *figures)."""
    recorded, tenure, topic, *values = row or (None,) * (3 + len(PAIR_FIGURES))
    figures = []
    for name, value in zip(PAIR_FIGURES, values, strict=True):
        info = lookup(catalogue, name)
        figures.append((info.label, f"{fmt.num(value)} {info.unit}"))
    return CallSide(
        call_id=call_id,
        recorded_at=fmt.date(recorded),
        tenure=fmt.MISSING if fmt.is_missing(tenure) else f"{int(tenure)} 天",
        topic=fmt.text(topic),
        figures=tuple(figures),
    )


def aligned(
    pair: pd.Series, rows: pd.DataFrame, scales: dict[str, float], cutter: ClipCutter
) -> tuple[Aligned, ...]:
    """reads.aligned_rows of one pair (a reads.agent_pairs row), with a clip of each answer."""
    return tuple(
        Aligned(
            early_customer=fmt.text(r["early_customer_text"]),
            current_customer=fmt.text(r["current_customer_text"]),
            early_text=fmt.text(r["early_text"]),
            current_text=fmt.text(r["current_text"]),
            similarity=fmt.num(r["similarity"]),
            changes=biggest_changes(r, scales),
            early_clip=cutter.clip(pair["early_call_id"], r["early_start_s"], r["early_end_s"]),
            current_clip=cutter.clip(
                pair["current_call_id"], r["current_start_s"], r["current_end_s"]
            ),
            early_utterance_id=int(r["early_utterance_id"]),
            current_utterance_id=int(r["current_utterance_id"]),
        )
        for _, r in rows.iterrows()
    )


def pair_view(
    pair: pd.Series, early: CallSide, current: CallSide, answers: tuple[Aligned, ...]
) -> PairView:
    return PairView(
        pair_id=pair["pair_id"],
        topic=fmt.text(pair["topic"]),
        similarity=fmt.num(pair["similarity"]),
        early=early,
        current=current,
        aligned=answers,
    )
