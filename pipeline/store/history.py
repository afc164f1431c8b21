"""What a run reads back: calls already done, the base tables the derived figures are
recomputed from, and the drift summary printed at the end of a run."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from pipeline.intake import FileLook, StoredFile


@dataclass(frozen=True)
class History:
    """The ok calls of the whole database, as the derive stage needs them."""

    calls: pd.DataFrame  # call_id, agent_id, recorded_at, agent_hired_at, topic
    utterances: pd.DataFrame  # utterance_log columns + agent_id
    metrics: pd.DataFrame  # call_figures columns + agent_id


def done_calls(con: duckdb.DuckDBPyConnection) -> dict[str, StoredFile]:
    """call_id -> audio hash and file look of calls already processed ok: re-runs skip them."""
    rows = con.execute(
        "SELECT call_id, audio_sha256, file_size, file_mtime_ns FROM call_log WHERE status = 'ok'"
    ).fetchall()
    return {
        call_id: StoredFile(sha, FileLook(size, mtime) if size is not None else None)
        for call_id, sha, size, mtime in rows
    }


def load_history(con: duckdb.DuckDBPyConnection) -> History:
    return History(
        calls=con.sql(
            "SELECT call_id, agent_id, recorded_at, agent_hired_at, topic "
            "FROM call_log WHERE status = 'ok'"
        ).df(),
        utterances=con.sql(
            "SELECT u.*, l.agent_id FROM utterance_log u "
            "JOIN call_log l USING (call_id) WHERE l.status = 'ok'"
        ).df(),
        metrics=con.sql(
            "SELECT f.*, l.agent_id FROM call_figures f "
            "JOIN call_log l USING (call_id) WHERE l.status = 'ok'"
        ).df(),
    )


def top_drift(con: duckdb.DuckDBPyConnection, limit: int = 5) -> pd.DataFrame:
    """Agents ranked by how much their agitation rose from early to current calls."""
    return con.execute(
        """
        SELECT a.agent_id, a.delta AS agitation_delta, r.delta AS speech_rate_delta_cpm,
               i.delta AS impatience_delta, c.delta AS confirmation_delta, a.n_early, a.n_current
        FROM agent_drift a
        LEFT JOIN agent_drift r ON r.agent_id = a.agent_id AND r.metric = 'agent_speech_rate_cpm'
        LEFT JOIN agent_drift i ON i.agent_id = a.agent_id AND i.metric = 'agent_impatience_count'
        LEFT JOIN agent_drift c ON c.agent_id = a.agent_id AND c.metric = 'agent_confirmation_count'
        WHERE a.metric = 'agitation' AND a.delta IS NOT NULL
        ORDER BY a.delta DESC LIMIT ?""",
        [int(limit)],
    ).df()


def derived_is_current(con: duckdb.DuckDBPyConnection, settings_sha256: str) -> bool:
    """Whether the derived tables already reflect every stored call under these settings: the
    last finished run used the same settings and no call was stored after it finished (a run
    that crashed after storing calls leaves them newer). A night with no new call then skips
    recomputing cohorts, agitation, pairs, alignment and drift."""
    rows = con.execute(
        """
        SELECT r.settings_sha256, r.finished_at,
               (SELECT max(processed_at) FROM call_log WHERE status = 'ok')
        FROM runs r
        WHERE r.status IN ('ok', 'ok_with_failures') AND r.finished_at IS NOT NULL
        ORDER BY r.finished_at DESC LIMIT 1"""
    ).fetchall()  # fetchone() would leave DuckDB 2.0's result open on the connection
    if not rows:
        return False
    sha, finished_at, last_call = rows[0]
    return sha == settings_sha256 and (last_call is None or last_call <= finished_at)
