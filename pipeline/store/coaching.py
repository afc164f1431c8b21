"""Coaching events and their outcomes in the database (docs/CONTRACTS.md, "Coaching outcomes").

coaching_events holds one row per agent and event date (`calibrate session`, or an imported
calibration session); coaching_results one row per agent, event and figure, recomputed from
the call figures of every agent (the uncoached ones are the comparison). The view
coaching_outcomes (pipeline/store/schema.py) joins the two for analysts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import date

import duckdb
import pandas as pd

from pipeline.coaching.records import CoachingEvent
from pipeline.store.db import transaction, write_frame


def has_coaching(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the file has the coaching tables (an older database opened read-only does not)."""
    rows = con.execute(  # fetchall: DuckDB 2.0 keeps a fetchone()'s result open
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'coaching_results'"
    ).fetchall()
    return bool(rows[0][0])


def has_agent(con: duckdb.DuckDBPyConnection, agent_id: str) -> bool:
    """Whether the database holds any call of this agent."""
    rows = con.execute("SELECT count(*) FROM call_log WHERE agent_id = ?", [agent_id]).fetchall()
    return bool(rows[0][0])


def save_events(con: duckdb.DuckDBPyConnection, events: Sequence[CoachingEvent]) -> int:
    """Record events; one an agent already has on that date is kept as it is. How many were new."""
    if not events:
        return 0
    frame = pd.DataFrame([asdict(e) for e in events])
    con.register("_events", frame)
    try:
        new = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT agent_id, event_date FROM _events) n "
            "ANTI JOIN coaching_events o USING (agent_id, event_date)"
        ).fetchall()[0][0]
        con.execute(
            "INSERT INTO coaching_events BY NAME SELECT * FROM _events "
            "ON CONFLICT (agent_id, event_date) DO NOTHING"
        )
    finally:
        con.unregister("_events")
    return int(new)


def events(con: duckdb.DuckDBPyConnection) -> list[tuple[str, date]]:
    """(agent_id, event_date) of every recorded event."""
    if not has_coaching(con):
        return []
    return [
        (str(a), d)
        for a, d in con.execute(
            "SELECT agent_id, event_date FROM coaching_events ORDER BY 1, 2"
        ).fetchall()
    ]


def outcome_inputs(con: duckdb.DuckDBPyConnection, figures: Sequence[str]) -> pd.DataFrame:
    """Every ok call's agent, date, cohort and the outcome figures (names checked against the
    view's columns, never pasted in unchecked)."""
    known = {r[0] for r in con.execute("DESCRIBE call_metrics").fetchall()}
    missing = [f for f in figures if f not in known]
    if missing:
        raise ValueError(f"[coaching] figures: not call_metrics columns: {', '.join(missing)}")
    cols = ", ".join(f"m.{f}" for f in figures)
    return con.execute(
        f"SELECT m.agent_id, m.call_id, l.recorded_at, m.cohort, {cols} "
        "FROM call_metrics m JOIN call_log l USING (call_id) ORDER BY l.recorded_at"
    ).df()


def replace_results(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, agents: Sequence[str] | None = None
) -> None:
    """Swap in outcome rows: of every agent, or of `agents` only, in one transaction."""
    with transaction(con):
        if agents is None:
            con.execute("DELETE FROM coaching_results")
        else:
            con.execute(
                "DELETE FROM coaching_results WHERE agent_id IN (SELECT unnest(?::VARCHAR[]))",
                [list(agents)],
            )
        write_frame(con, "coaching_results", frame)


def agent_outcomes(con: duckdb.DuckDBPyConnection, agent_id: str) -> pd.DataFrame:
    """The coaching_outcomes rows of one agent, by event and figure."""
    if not has_coaching(con):
        return pd.DataFrame()
    return con.execute(
        "SELECT * FROM coaching_outcomes WHERE agent_id = ? ORDER BY event_date, figure",
        [agent_id],
    ).df()


def agent_events(con: duckdb.DuckDBPyConnection, agent_id: str) -> list[date]:
    """The dates of one agent's coaching events, in order."""
    return [d for a, d in events(con) if a == agent_id]


def latest_event_outcomes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every figure's coaching_outcomes row of each coached agent's latest event."""
    if not has_coaching(con):
        return pd.DataFrame(columns=["agent_id", "event_date", "figure", "verdict"])
    return con.execute(
        "SELECT * FROM coaching_outcomes o WHERE event_date = "
        "(SELECT max(event_date) FROM coaching_events e WHERE e.agent_id = o.agent_id) "
        "ORDER BY agent_id, figure"
    ).df()


def agent_timeline(
    con: duckdb.DuckDBPyConnection, agent_id: str, figures: Sequence[str]
) -> pd.DataFrame:
    """call_id, recorded_at, cohort and the figures (those call_metrics has) of an agent's ok
    calls, in time order (the report's timeline)."""
    known = {r[0] for r in con.execute("DESCRIBE call_metrics").fetchall()}
    cols = "".join(f", m.{f}" for f in figures if f in known)
    return con.execute(
        f"SELECT m.call_id, l.recorded_at, m.cohort{cols} FROM call_metrics m "
        "JOIN call_log l USING (call_id) WHERE m.agent_id = ? ORDER BY l.recorded_at",
        [agent_id],
    ).df()
