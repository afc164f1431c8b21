"""The report's calibration parts: what the scoring script needs (rubric, session, agent), and
the agreement section built from the scores imported so far (pipeline.agreement).

The scoring form itself is plain HTML in the template; pipeline/templates/scoring.js keeps the
scores in the browser and exports them in the format pipeline.calibration imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from pipeline import agreement
from pipeline.calibration import FORMAT, VERSION
from pipeline.report import fmt
from pipeline.rubric import Rubric
from pipeline.store import calibration as db

SESSIONS_SHOWN = 3  # most recent sessions with scores of this agent's pairs
SIDE_LABEL = {"early": "早期 early", "current": "当前 current", "pair": "整对 pair"}


def default_session(now: datetime) -> str:
    """Evaluators of one session share its name; the day of the report is a fair default and
    the page lets them change it."""
    return now.strftime("%Y-%m-%d")


def page_data(agent_id: str, session: str, rubric: Rubric, generated_at: str) -> dict[str, Any]:
    """The JSON the scoring script reads from the page (rendered with Jinja's tojson)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "agent_id": agent_id,
        "session": session,
        "generated_at": generated_at,
        "rubric": rubric.as_page_data(),
    }


@dataclass(frozen=True)
class ItemRow:
    label: str
    level: str
    alpha: str
    verdict: str  # good | fair | poor | na: Krippendorff's 0.8 / 0.667 rules of thumb
    n_units: int
    n_evaluators: int
    mean_spread: str
    note: str


@dataclass(frozen=True)
class Disputed:
    where: str  # pair and answer
    item: str
    spread: str
    scores: str
    text: str


@dataclass(frozen=True)
class FitRow:
    item: str
    figure: str
    expected: str
    rho: str
    n_units: int
    as_expected: bool | None


@dataclass(frozen=True)
class SessionView:
    session: str
    evaluators: tuple[str, ...]
    n_pairs: int
    items: tuple[ItemRow, ...]
    offset_items: tuple[str, ...]  # column labels of the offsets table
    offsets: tuple[tuple[str, tuple[str, ...]], ...]  # evaluator, offset per item
    disputed: tuple[Disputed, ...]
    fits: tuple[FitRow, ...]


def alpha_verdict(alpha: float | None) -> str:
    if alpha is None:
        return "na"
    return "good" if alpha >= 0.8 else "fair" if alpha >= 0.667 else "poor"


def session_view(
    summary: agreement.Summary, rubric: Rubric, texts: dict[tuple, tuple[str, str]]
) -> SessionView:
    """Summary -> rows written as text; `texts`: (pair_id, early_uid, current_uid) ->
    (early_text, current_text) of the disputed answers."""
    items = tuple(
        ItemRow(
            i.label,
            i.level,
            fmt.num(i.alpha) if i.alpha is not None else fmt.MISSING,
            alpha_verdict(i.alpha),
            i.n_units,
            i.n_evaluators,
            fmt.num(i.mean_spread),
            i.note,
        )
        for i in summary.items
    )
    by = {(o.evaluator, o.item): o for o in summary.offsets}
    offsets = tuple(
        (e, tuple(fmt.num(by[(e, k)].offset, signed=True) for k in rubric.keys if (e, k) in by))
        for e in summary.evaluators
    )
    disputed = []
    for s in summary.widest:
        early, current = texts.get(
            (s.pair_id, s.early_utterance_id, s.current_utterance_id), ("", "")
        )
        disputed.append(
            Disputed(
                where=f"{s.pair_id} #{s.early_utterance_id}/#{s.current_utterance_id} · "
                f"{SIDE_LABEL.get(s.side, s.side)}",
                item=_label(rubric, s.item),
                spread=fmt.num(s.spread),
                scores=", ".join(f"{e} {v}" for e, v in s.scores),
                text=current if s.side == "current" else early if s.side == "early" else "",
            )
        )
    fits = tuple(
        FitRow(
            _label(rubric, f.item),
            f.figure,
            "↑" if f.expected > 0 else "↓",
            fmt.num(f.rho, signed=True),
            f.n_units,
            f.as_expected,
        )
        for f in summary.figures
    )
    return SessionView(
        summary.session,
        summary.evaluators,
        summary.n_pairs,
        items,
        tuple(_label(rubric, k) for k in rubric.keys),
        offsets,
        tuple(disputed),
        fits,
    )


def _label(rubric: Rubric, key: str) -> str:
    try:
        item = rubric.item(key)
    except KeyError:
        return key
    return f"{item.label} {item.en}"


def summarise_session(
    con: duckdb.DuckDBPyConnection, session: str, rubric: Rubric, agent_id: str | None = None
) -> agreement.Summary:
    return agreement.summarise(
        session,
        db.session_scores(con, session, agent_id),
        db.session_agreement(con, session, agent_id),
        rubric,
    )


def agent_sessions(
    con: duckdb.DuckDBPyConnection, agent_id: str, rubric: Rubric
) -> list[SessionView]:
    """The agreement of the latest sessions that scored this agent's pairs."""
    out = []
    for session in db.sessions(con, agent_id)["session"].head(SESSIONS_SHOWN):
        summary = summarise_session(con, session, rubric, agent_id)
        pair_ids = sorted({s.pair_id for s in summary.widest})
        texts = {
            (r.pair_id, int(r.early_utterance_id), int(r.current_utterance_id)): (
                r.early_text,
                r.current_text,
            )
            for r in db.unit_texts(con, pair_ids).itertuples()
        }
        out.append(session_view(summary, rubric, texts))
    return out
