"""The team overview: one page listing every agent with early/current call counts, the drift of
a few tone and clarity figures, a small trend line, sortable, each agent linking to their own
calibration report (`callreview report --all --out DIR` writes them all, docs/CONTRACTS.md).

Agents whose early or current cohort has fewer than MIN_COHORT_CALLS calls stay in the list,
marked, with their deltas greyed: a change measured on one call is an anecdote, not a drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
from markupsafe import Markup

from pipeline import store
from pipeline.catalogue import DEFAULT_PATH, MetricInfo, load_catalogue, lookup
from pipeline.config import Config
from pipeline.report import build_report, environment, fmt, views
from pipeline.report.charts import COHORT_COLOURS
from pipeline.rubric import DEFAULT_RUBRIC, Rubric, load_rubric
from pipeline.store import coaching as coaching_db
from pipeline.store import reads

INDEX_TEMPLATE = "index.html.j2"
MIN_COHORT_CALLS = 2  # effect sizes need two calls a side (docs/METRICS.md, "Drift")
TREND_METRIC = "agitation"
# (group, metric): the columns of the overview, tone, clarity, then service behaviours
COLUMNS = (
    ("tone", "agitation"),
    ("tone", "agent_speech_rate_cpm"),
    ("tone", "agent_impatience_count"),
    ("clarity", "agent_confirmation_count"),
    ("clarity", "customer_confusion_count"),
    ("clarity", "agent_long_sentence_share"),
    ("service", "agent_empathy_rate"),
    ("service", "agent_ownership_share"),
    ("service", "agent_talking_down_per_min"),
    ("service", "agent_recited_share"),
)
SPARK_W, SPARK_H, SPARK_PAD = 110, 30, 4


@dataclass(frozen=True)
class Cell:
    text: str  # signed delta, or '–'
    sort: float | None  # what the column sorts by
    verdict: str  # worse | better | neutral | flat | recording | na
    title: str  # early -> current, effect size


@dataclass(frozen=True)
class AgentRow:
    agent_id: str
    href: str
    hired_at: str
    n_calls: int
    n_failed: int
    n_early: int
    n_current: int
    last_call: str
    cells: tuple[Cell, ...]
    too_few: str  # why the deltas are thin, '' when both cohorts are big enough
    trend: Markup
    coaching: Cell  # the latest coaching event's outcome


def page_name(agent_id: str, taken: set[str]) -> str:
    """A file name for the agent's page: the id with unsafe characters replaced, unique."""
    base = re.sub(r"[^\w.-]+", "_", agent_id).strip("._") or "agent"
    name, n = f"{base}.html", 2
    while name.lower() in taken or name.lower() == "index.html":
        name, n = f"{base}-{n}.html", n + 1
    taken.add(name.lower())
    return name


def _cell(row: pd.Series | None, info: MetricInfo, thin: bool) -> Cell:
    if row is None or fmt.is_missing(row["delta"]):
        return Cell(fmt.MISSING, None, "na", "no early/current figures")
    delta = float(row["delta"])
    sign = 0 if delta == 0 else (1 if delta > 0 else -1)
    shown = views.verdict(sign, info)
    title = (
        f"{fmt.num(row['early_mean'])} → {fmt.num(row['current_mean'])} {info.unit}".strip()
        + f" · d = {fmt.num(row['effect_size'], signed=True)}"
    )
    return Cell(fmt.num(delta, signed=True), delta, "thin" if thin else shown, title)


def coaching_cell(outcomes: pd.DataFrame) -> Cell:
    """The latest event's outcomes of one agent (coaching_outcomes rows, one per figure):
    how many figures improved and got worse; sorts by improved minus worse."""
    if outcomes.empty:
        return Cell(fmt.MISSING, None, "na", "no coaching event recorded")
    day = fmt.date(outcomes["event_date"].iloc[0])
    verdicts = outcomes["verdict"].fillna("not computed yet")
    title = f"{day}: " + "; ".join(
        f"{f} {v}" for f, v in zip(outcomes["figure"].fillna("–"), verdicts, strict=True)
    )
    judged = verdicts[~verdicts.isin(["too few calls yet", "not computed yet"])]
    if judged.empty:
        return Cell(f"{day} · too few calls yet", None, "thin", title)
    better, worse = int((judged == "improved").sum()), int((judged == "worse").sum())
    net = better - worse
    verdict = "better" if net > 0 else "worse" if net < 0 else "flat"
    return Cell(f"{day} · {better} improved, {worse} worse", float(net), verdict, title)


def sparkline(points: pd.DataFrame) -> Markup:
    """Values of one agent's calls in time order (value, cohort): a line with cohort dots."""
    pts = points.dropna(subset=["value"]).reset_index(drop=True)
    w, h, pad = SPARK_W, SPARK_H, SPARK_PAD
    head = f'<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">'
    if pts.empty:
        return Markup(head + f'<text x="{pad}" y="{h - 10}" class="muted">无数据</text></svg>')
    lo, hi = float(pts["value"].min()), float(pts["value"].max())
    span = hi - lo or 1.0
    n = len(pts)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + (w - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)
        return x, h - pad - (h - 2 * pad) * ((v - lo) / span if hi > lo else 0.5)

    coords = [xy(i, float(v)) for i, v in enumerate(pts["value"])]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    parts = [head, f'<polyline points="{line}" class="trend"/>']
    for (x, y), cohort in zip(coords, pts["cohort"], strict=True):
        colour = COHORT_COLOURS.get(cohort if cohort in ("early", "current") else None)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.4" fill="{colour}"/>')
    return Markup("".join(parts) + "</svg>")


def agent_rows(
    con: duckdb.DuckDBPyConnection, catalogue: dict[str, MetricInfo], hrefs: Mapping[str, str]
) -> list[AgentRow]:
    drift = reads.drift_of(con, [m for _, m in COLUMNS]).set_index(["agent_id", "metric"])
    trend = reads.metric_by_call(con, TREND_METRIC)
    coaching = coaching_db.latest_event_outcomes(con)
    rows = []
    for r in reads.agent_counts(con).itertuples():
        short = [
            f"{name} {n} < {MIN_COHORT_CALLS}"
            for name, n in (("early", r.n_early), ("current", r.n_current))
            if n < MIN_COHORT_CALLS
        ]
        cells = tuple(
            _cell(
                drift.loc[(r.agent_id, m)] if (r.agent_id, m) in drift.index else None,
                lookup(catalogue, m),
                bool(short),
            )
            for _, m in COLUMNS
        )
        rows.append(
            AgentRow(
                agent_id=r.agent_id,
                href=hrefs.get(r.agent_id, ""),
                hired_at=fmt.date(r.hired_at),
                n_calls=int(r.n_calls),
                n_failed=int(r.n_failed),
                n_early=int(r.n_early),
                n_current=int(r.n_current),
                last_call=fmt.date(r.last_call),
                cells=cells,
                too_few="too few calls: " + ", ".join(short) if short else "",
                trend=sparkline(trend[trend["agent_id"] == r.agent_id]),
                coaching=coaching_cell(coaching[coaching["agent_id"] == r.agent_id]),
            )
        )
    return rows


def build_index(
    con: duckdb.DuckDBPyConnection,
    hrefs: Mapping[str, str],
    *,
    catalogue_path: Path = DEFAULT_PATH,
) -> str:
    """The overview page; `hrefs` maps agent ids to their pages (relative links)."""
    catalogue = load_catalogue(catalogue_path)
    columns = [(group, lookup(catalogue, m)) for group, m in COLUMNS]
    return (
        environment()
        .get_template(INDEX_TEMPLATE)
        .render(
            rows=agent_rows(con, catalogue, hrefs),
            columns=columns,
            min_calls=MIN_COHORT_CALLS,
            trend=lookup(catalogue, TREND_METRIC),
            colours=COHORT_COLOURS,
            generated_at=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        )
    )


def write_all(
    db: str | Path,
    out_dir: str | Path,
    config: Config,
    *,
    rubric: Rubric | None = None,
    session: str | None = None,
    mute_spans: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    on_agent: Callable[[str], None] | None = None,
) -> list[Path]:
    """Every agent's report and the overview (index.html) into `out_dir`; the files written,
    the index last. `on_agent` is told each agent before its page is built (progress)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rubric = rubric or load_rubric(DEFAULT_RUBRIC)
    con = store.connect(db, read_only=True)
    try:
        taken: set[str] = set()
        hrefs = {a: page_name(a, taken) for a in reads.known_agents(con)}
        written = []
        for agent_id, name in hrefs.items():
            if on_agent:
                on_agent(agent_id)
            html = build_report(
                con,
                agent_id,
                config,
                rubric=rubric,
                session=session,
                mute_spans=mute_spans,
                index_href="index.html",
            )
            (out / name).write_text(html, encoding="utf-8")
            written.append(out / name)
        (out / "index.html").write_text(build_index(con, hrefs), encoding="utf-8")
    finally:
        con.close()
    return [*written, out / "index.html"]
