"""Calibration report: one self-contained HTML page per agent (docs/CONTRACTS.md, "Calibration report").

A QA lead opens it straight from disk in a calibration session, so everything is inline: CSS in
the template, charts as hand-made SVG, audio clips as base64 data: URIs, and one inline script
(pipeline/templates/scoring.js) for scoring and playback. No CDN, no network request.

Page, top to bottom:
  header          agent, early/current call counts, date range, when generated
  drift summary   agent_drift, most worrying change first, coloured by direction and size
  tenure charts   a few key call metrics against tenure_days (recorded_at without a hire date)
  coaching        the outcome figures over the calendar, coaching events marked, the early,
                  before and after windows shaded, and each event's outcomes (.coaching)
  overview        current-call agent utterances flagged agitated or impatient
  call pairs      call_pairs side by side, then aligned_utterances in order: customer context,
                  early | current text, the figures that changed most, clips (early, then current),
                  a "play early, then current" button and the rubric's scoring form
  agreement       evaluators' imported scores of this agent's pairs (pipeline.agreement)

Reads come from pipeline.store.reads, labels from the metric catalogue, records for the page
from .views, charts from .charts, clips from .clips. Every transcript, id and topic goes through
Jinja's autoescape; the only markup built in Python is the SVG, escaped where it is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import jinja2

from pipeline import store
from pipeline.catalogue import DEFAULT_PATH, MetricInfo, load_catalogue
from pipeline.config import Config
from pipeline.report import calibration, views
from pipeline.report.charts import CHART_METRICS, COHORT_COLOURS, tenure_charts
from pipeline.report.clips import CLIP_PAD_S, ClipCutter
from pipeline.report.coaching import coaching_view
from pipeline.rubric import DEFAULT_RUBRIC, Rubric, load_rubric
from pipeline.store import reads

# call_id -> stretches of the call to silence in its clips, (start_s, end_s) in call time
MuteSpans = Mapping[str, Sequence[tuple[float, float]]]

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
TEMPLATE_NAME = "report.html.j2"


def _pairs(
    con: duckdb.DuckDBPyConnection,
    agent_id: str,
    config: Config,
    catalogue: dict[str, MetricInfo],
    max_pairs: int | None,
    mute_spans: MuteSpans,
) -> tuple[list[views.PairView], int]:
    """The agent's pairs, most similar first (capped at max_pairs), and how many there are."""
    pairs = reads.agent_pairs(con, agent_id)
    shown = pairs if max_pairs is None else pairs.head(max(max_pairs, 0))
    scales = views.delta_scales(reads.agent_baseline(con, agent_id), config.baseline)
    cutter = ClipCutter(partial(reads.call_recording, con), lambda c: mute_spans.get(c, ()))

    def side(call_id: str) -> views.CallSide:
        row = reads.call_side(con, call_id, views.PAIR_FIGURES)
        return views.call_side(call_id, row, catalogue)

    pair_views = []
    for _, p in shown.iterrows():
        answers = views.aligned(p, reads.aligned_rows(con, p["pair_id"]), scales, cutter)
        early, current = side(p["early_call_id"]), side(p["current_call_id"])
        pair_views.append(views.pair_view(p, early, current, answers))
    return pair_views, len(pairs)


def environment() -> jinja2.Environment:
    # autoescape on for everything: transcripts are customer speech and may contain anything.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def build_report(
    con: duckdb.DuckDBPyConnection,
    agent_id: str,
    config: Config,
    max_pairs: int | None = None,
    *,
    catalogue_path: Path = DEFAULT_PATH,
    rubric: Rubric | None = None,
    session: str | None = None,
    mute_spans: MuteSpans | None = None,
    index_href: str | None = None,
) -> str:
    """The calibration report for one agent as a self-contained HTML page.

    `session` names the calibration session the page's scores belong to (default: today);
    `mute_spans` silences stretches of calls in every clip (default: every stretch masked as
    PII in `pii_spans`); `index_href` links back to the team overview when the page is written
    with it.
    """
    if mute_spans is None:
        mute_spans = reads.mute_spans(con)  # masked PII stays silent unless told otherwise
    views.check_agent(agent_id, reads.known_agents(con))
    catalogue = load_catalogue(catalogue_path)
    rubric = rubric or load_rubric(DEFAULT_RUBRIC)
    high = config.agitation.high
    now = datetime.now().astimezone()
    head = views.header(agent_id, reads.agent_calls(con, agent_id), now)
    drift = reads.agent_drift(con, agent_id)
    charts, x_is_date = tenure_charts(reads.chart_points(con, agent_id, CHART_METRICS), catalogue)
    flagged = reads.flagged_utterances(con, agent_id, high)
    pairs, n_pairs = _pairs(con, agent_id, config, catalogue, max_pairs, mute_spans or {})
    session = session or calibration.default_session(now)
    return (
        environment()
        .get_template(TEMPLATE_NAME)
        .render(
            head=head,
            drift=views.drift_summary(drift, catalogue),
            mixed_versions=views.mixed_versions(drift),
            charts=charts,
            x_is_date=x_is_date,
            coaching=coaching_view(con, agent_id, config.coaching, catalogue),
            colours=COHORT_COLOURS,
            flagged=views.flagged(flagged, high),
            n_flagged=len(flagged),
            agitation_high=high,
            pairs=pairs,
            n_pairs=n_pairs,
            pad_s=CLIP_PAD_S,
            rubric=rubric,
            page_data=calibration.page_data(agent_id, session, rubric, head.generated_at),
            sessions=calibration.agent_sessions(con, agent_id, rubric),
            index_href=index_href,
        )
    )


def write_report(
    db: str | Path, agent_id: str, out: str | Path, config: Config, **options: Any
) -> Path:
    """Write the report for `agent_id` from the database file `db` (opened read-only)."""
    con = store.connect(db, read_only=True)  # FileNotFoundError when there is no database
    try:
        html = build_report(con, agent_id, config, **options)  # options: as build_report's
    finally:
        con.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
