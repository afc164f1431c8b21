"""Calibration sessions in the database: the imported scores, which files were imported, and
the reads behind the agreement summary (docs/CONTRACTS.md, "Calibration sessions").

calibration_scores holds one row per session, evaluator, aligned answer pair, side and item;
calibration_imports one row per imported file, keyed by its content hash, so importing the same
file twice adds nothing. A later export of the same evaluator (a superset: the page keeps every
score) replaces the rows it repeats, and an older one never overwrites newer scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import duckdb
import pandas as pd

from pipeline.records import CalibrationImport, CalibrationScore
from pipeline.store.db import transaction, write_frame
from pipeline.store.schema import TABLE

_KEYS = TABLE["calibration_scores"].key
_KEY = ", ".join(_KEYS)
_SAME_KEY = " AND ".join(f"o.{k} = n.{k}" for k in _KEYS)


def has_calibration(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the file has the calibration tables (a database older than them opened
    read-only does not, and reads as having no scores)."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'calibration_scores'"
    ).fetchone()
    return bool(row and row[0])


def aligned_keys(con: duckdb.DuckDBPyConnection, pair_ids: Sequence[str]) -> pd.DataFrame:
    """aligned_utterances rows (pair, agent, both calls and utterance ids) of the given pairs:
    what an imported score may refer to."""
    return con.execute(
        "SELECT pair_id, agent_id, early_call_id, early_utterance_id, current_call_id, "
        "current_utterance_id FROM aligned_utterances WHERE list_contains(?, pair_id)",
        [list(pair_ids)],
    ).df()


def imported_at(con: duckdb.DuckDBPyConnection, source_sha256: str) -> object | None:
    """When a file with this content was imported; None when it never was."""
    row = con.execute(
        "SELECT imported_at FROM calibration_imports WHERE source_sha256 = ?", [source_sha256]
    ).fetchone()
    return row[0] if row else None


def save_import(
    con: duckdb.DuckDBPyConnection, record: CalibrationImport, scores: Sequence[CalibrationScore]
) -> int:
    """Store one file's scores and its import record in one transaction; the number of score
    rows written. A score already stored for the same key is replaced only by a newer one
    (the same score again, from another export of it, is left as it is)."""
    frame = pd.DataFrame([asdict(s) for s in scores])
    with transaction(con):
        written = 0
        if len(frame):
            con.register("_new", frame)
            try:
                con.execute(
                    "DELETE FROM calibration_scores AS o USING _new AS n "
                    f"WHERE {_SAME_KEY} AND o.scored_at < n.scored_at"
                )
                fresh = con.execute(
                    f"SELECT n.* FROM _new n ANTI JOIN calibration_scores o USING ({_KEY})"
                ).df()
            finally:
                con.unregister("_new")
            write_frame(con, "calibration_scores", fresh)
            written = len(fresh)
        write_frame(con, "calibration_imports", pd.DataFrame([asdict(record)]))
    return written


def sessions(con: duckdb.DuckDBPyConnection, agent_id: str | None = None) -> pd.DataFrame:
    """session, n_evaluators, n_scores, last_scored_at of every session (of one agent's pairs
    when agent_id is given), most recent first."""
    if not has_calibration(con):
        return pd.DataFrame(columns=["session", "n_evaluators", "n_scores", "last_scored_at"])
    return con.execute(
        "SELECT session, count(DISTINCT evaluator) AS n_evaluators, count(*) AS n_scores, "
        "max(scored_at) AS last_scored_at FROM calibration_scores "
        "WHERE ? IS NULL OR agent_id = ? GROUP BY session ORDER BY last_scored_at DESC, session",
        [agent_id, agent_id],
    ).df()


def session_scores(
    con: duckdb.DuckDBPyConnection, session: str, agent_id: str | None = None
) -> pd.DataFrame:
    """Every calibration_scores row of a session (optionally of one agent's pairs)."""
    return con.execute(
        "SELECT * FROM calibration_scores WHERE session = ? AND (? IS NULL OR agent_id = ?) "
        "ORDER BY pair_id, early_utterance_id, current_utterance_id, side, item, evaluator",
        [session, agent_id, agent_id],
    ).df()


def session_agreement(
    con: duckdb.DuckDBPyConnection, session: str, agent_id: str | None = None
) -> pd.DataFrame:
    """The calibration_agreement view's rows of a session: spread and figures per scored
    answer and item."""
    return con.execute(
        "SELECT * FROM calibration_agreement WHERE session = ? AND (? IS NULL OR agent_id = ?)",
        [session, agent_id, agent_id],
    ).df()


def unit_texts(con: duckdb.DuckDBPyConnection, pair_ids: Sequence[str]) -> pd.DataFrame:
    """The early and current agent texts of aligned pairs, to show what was disputed."""
    return con.execute(
        "SELECT pair_id, early_utterance_id, current_utterance_id, early_text, current_text "
        "FROM aligned_utterances WHERE list_contains(?, pair_id)",
        [list(pair_ids)],
    ).df()


def all_agreement(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The calibration_agreement view's rows of every session (`calibrate fit`)."""
    return con.execute("SELECT * FROM calibration_agreement").df()


def drift_verdicts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every evaluator's `drifted` verdict (1 yes, 0 no) on every aligned answer pair."""
    return con.execute(
        "SELECT session, evaluator, current_call_id, pair_id, early_utterance_id, "
        "current_utterance_id, score FROM calibration_scores "
        "WHERE side = 'pair' AND item = 'drifted' AND score IS NOT NULL"
    ).df()


def call_values(
    con: duckdb.DuckDBPyConnection, call_ids: Sequence[str], metrics: Sequence[str]
) -> pd.DataFrame:
    """call_id and the given call_metrics columns (names checked against the view) of calls."""
    known = {r[0] for r in con.execute("DESCRIBE call_metrics").fetchall()}
    cols = "".join(f", {m}" for m in dict.fromkeys(metrics) if m in known)
    return con.execute(
        f"SELECT call_id{cols} FROM call_metrics WHERE list_contains(?, call_id)",
        [list(call_ids)],
    ).df()
