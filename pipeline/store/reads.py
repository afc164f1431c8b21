"""The reads behind the calibration report, one function per question.

Each takes an open connection and returns a frame or plain rows; turning them into what a
page shows is pipeline.report's job. Tables and views: see the schema in pipeline.store.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import duckdb
import pandas as pd

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def _column_list(names: Sequence[str], prefix: str = "") -> str:
    """Column names are spliced into SQL (they cannot be parameters), so only plain names pass."""
    for name in names:
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a column name: {name!r}")
    return ", ".join(prefix + name for name in names)


def known_agents(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT agent_id FROM call_log WHERE agent_id IS NOT NULL ORDER BY agent_id"
    ).fetchall()
    return [r[0] for r in rows]


def agent_calls(con: duckdb.DuckDBPyConnection, agent_id: str) -> pd.DataFrame:
    """call_id, recorded_at, agent_hired_at, cohort, status of every call of the agent, failed
    ones too, and whether its speaker attribution is low-confidence."""
    return con.execute(
        "SELECT c.call_id, c.recorded_at, c.agent_hired_at, c.cohort, c.status, a.low_confidence "
        "FROM calls c LEFT JOIN speaker_attribution a USING (call_id) WHERE c.agent_id = ?",
        [agent_id],
    ).df()


def agent_drift(con: duckdb.DuckDBPyConnection, agent_id: str) -> pd.DataFrame:
    return con.execute("SELECT * FROM agent_drift WHERE agent_id = ?", [agent_id]).df()


def chart_points(
    con: duckdb.DuckDBPyConnection, agent_id: str, metrics: Sequence[str]
) -> pd.DataFrame:
    """call_id, cohort, tenure_days, recorded_at and the `metrics` that call_metrics has, one
    row per ok call of the agent, oldest first."""
    available = {c[0] for c in con.execute("DESCRIBE call_metrics").fetchall()}
    cols = _column_list([m for m in metrics if m in available], prefix="m.")
    return con.execute(
        f"SELECT m.call_id, m.cohort, m.tenure_days, c.recorded_at{', ' + cols if cols else ''} "
        "FROM call_metrics m JOIN calls c USING (call_id) WHERE m.agent_id = ? "
        "ORDER BY c.recorded_at",
        [agent_id],
    ).df()


def flagged_utterances(
    con: duckdb.DuckDBPyConnection, agent_id: str, agitation_high: float
) -> pd.DataFrame:
    """Agent utterances of current ok calls above `agitation_high`, with impatience phrases, or
    with a veto behaviour (talking down, arguing after a correction: `behaviours` lists the
    kinds and the words that fired): veto behaviours first, then the most agitated."""
    return con.execute(
        """WITH b AS (
             SELECT call_id, utterance_id,
                    string_agg(kind || ': ' || words, '; ' ORDER BY kind) AS behaviours
             FROM utterance_behaviours WHERE kind IN ('talking_down', 'argues') GROUP BY ALL)
           SELECT u.call_id, c.recorded_at, u.start_s, u.text, u.agitation, u.impatience_hits,
                  b.behaviours
           FROM utterances u JOIN calls c USING (call_id)
           LEFT JOIN b USING (call_id, utterance_id)
           WHERE c.agent_id = ? AND c.cohort = 'current' AND c.status = 'ok'
             AND u.speaker = 'agent'
             AND (u.agitation > ? OR u.impatience_hits > 0 OR b.behaviours IS NOT NULL)
           ORDER BY b.behaviours IS NULL, u.agitation DESC NULLS LAST, u.impatience_hits DESC,
                    u.call_id, u.start_s""",
        [agent_id, agitation_high],
    ).df()


def agent_pairs(con: duckdb.DuckDBPyConnection, agent_id: str) -> pd.DataFrame:
    """The agent's call_pairs, most similar first."""
    return con.execute(
        "SELECT * FROM call_pairs WHERE agent_id = ? ORDER BY similarity DESC NULLS LAST, pair_id",
        [agent_id],
    ).df()


def aligned_rows(con: duckdb.DuckDBPyConnection, pair_id: str) -> pd.DataFrame:
    """aligned_utterances of one pair, in call order."""
    return con.execute(
        "SELECT * FROM aligned_utterances WHERE pair_id = ? "
        "ORDER BY early_utterance_id, current_utterance_id",
        [pair_id],
    ).df()


def call_side(con: duckdb.DuckDBPyConnection, call_id: str, figures: Sequence[str]) -> tuple | None:
    """(recorded_at, tenure_days, topic, *figures) of one call; figures from call_metrics, so
    None for a call that was not measured. None when the call is unknown."""
    cols = _column_list(figures, prefix="m.")
    return con.execute(
        f"SELECT c.recorded_at, c.tenure_days, c.topic{', ' + cols if cols else ''} "
        "FROM calls c LEFT JOIN call_metrics m ON m.call_id = c.call_id WHERE c.call_id = ?",
        [call_id],
    ).fetchone()


def agent_baseline(con: duckdb.DuckDBPyConnection, agent_id: str) -> pd.DataFrame:
    """The agent's agent_baselines row (no rows when the agent has no baseline)."""
    return con.execute("SELECT * FROM agent_baselines WHERE agent_id = ?", [agent_id]).df()


def call_recording(con: duckdb.DuckDBPyConnection, call_id: str) -> tuple | None:
    """(folder, path, channels, audio_sha256) of one call; None when the call is unknown."""
    return con.execute(
        "SELECT folder, path, channels, audio_sha256 FROM calls WHERE call_id = ?", [call_id]
    ).fetchone()


# --- The team overview (pipeline/report/index.py) --------------------------------------------


def agent_counts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per agent: hired, calls (ok and failed), early and current ok calls, first and
    last call."""
    return con.execute(
        """SELECT agent_id, min(agent_hired_at) AS hired_at,
                  count(*) FILTER (WHERE status = 'ok') AS n_calls,
                  count(*) FILTER (WHERE status <> 'ok') AS n_failed,
                  count(*) FILTER (WHERE status = 'ok' AND cohort = 'early') AS n_early,
                  count(*) FILTER (WHERE status = 'ok' AND cohort = 'current') AS n_current,
                  min(recorded_at) FILTER (WHERE status = 'ok') AS first_call,
                  max(recorded_at) FILTER (WHERE status = 'ok') AS last_call
           FROM calls WHERE agent_id IS NOT NULL GROUP BY agent_id ORDER BY agent_id"""
    ).df()


def drift_of(con: duckdb.DuckDBPyConnection, metrics: Sequence[str]) -> pd.DataFrame:
    """agent_drift rows of the given metrics, every agent."""
    return con.execute(
        "SELECT agent_id, metric, early_mean, current_mean, delta, effect_size, n_early, "
        "n_current FROM agent_drift WHERE list_contains(?, metric)",
        [list(metrics)],
    ).df()


def metric_by_call(con: duckdb.DuckDBPyConnection, metric: str) -> pd.DataFrame:
    """agent_id, call_id, cohort, recorded_at and one call_metrics column, every ok call,
    oldest first: the overview's trend lines."""
    col = _column_list([metric], prefix="m.")
    return con.execute(
        f"SELECT m.agent_id, m.call_id, m.cohort, c.recorded_at, {col} AS value "
        "FROM call_metrics m JOIN calls c USING (call_id) ORDER BY m.agent_id, c.recorded_at"
    ).df()


def mute_spans(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[float, float]]]:
    """call_id -> the (start_s, end_s) stretches masked as PII, which clips must not play."""
    try:
        rows = con.execute(
            "SELECT call_id, start_s, end_s FROM pii_spans ORDER BY call_id, start_s"
        ).fetchall()
    except duckdb.CatalogException:  # a database from before PII spans were stored
        return {}
    out: dict[str, list[tuple[float, float]]] = {}
    for call_id, start, end in rows:
        out.setdefault(call_id, []).append((float(start), float(end)))
    return out
