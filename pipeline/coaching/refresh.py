"""Recompute coaching outcomes in the database: after a run's derived tables, and when an event
is recorded or a session imported (docs/CONTRACTS.md, "Coaching outcomes")."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from pipeline.catalogue import DEFAULT_PATH, load_catalogue
from pipeline.coaching.options import CoachingOptions
from pipeline.coaching.outcomes import outcome_rows
from pipeline.store import coaching as db


def refresh_outcomes(
    con: duckdb.DuckDBPyConnection, options: CoachingOptions, agents: Sequence[str] | None = None
) -> pd.DataFrame:
    """The outcome rows of every coached agent (or of `agents`), written to coaching_results.

    Every agent's calls are read, not only the coached agents': the uncoached agents over the
    same dates are the comparison, so a run that changed any agent recomputes every coached one.
    """
    events = db.events(con)
    frame = (
        outcome_rows(
            db.outcome_inputs(con, options.figures),
            events,
            options,
            load_catalogue(DEFAULT_PATH),
            agents,
        )
        if events
        else pd.DataFrame()
    )
    db.replace_results(con, frame, agents)
    return frame
