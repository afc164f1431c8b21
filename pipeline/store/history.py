"""What a run reads back: calls already done, the base tables the derived figures are
recomputed from, and the drift summary printed at the end of a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from pipeline.intake import FileLook, StoredFile
from pipeline.store.schema import TABLE


@dataclass(frozen=True)
class History:
    """The ok calls (of every agent, or of some), as the derive stage needs them."""

    calls: pd.DataFrame  # call_id, agent_id, recorded_at, agent_hired_at, topic
    utterances: pd.DataFrame  # utterance_log columns (all, or those asked for) + agent_id
    metrics: pd.DataFrame  # call_figures columns + agent_id
    # The stored service-behaviour detection of calls whose text has not changed since it was
    # derived (call_behaviours' per-call columns; their utterance_behaviours rows): it reads the
    # call's own text alone, so a night re-detects only its new calls. None: detect every call.
    kept_behaviours: pd.DataFrame | None = None
    kept_hits: pd.DataFrame | None = None
    kept_words: pd.DataFrame | None = None  # call_words rows of those calls (pairing's words)
    # The agents' stored baselines, and the stored aligned_utterances rows of pairs whose two
    # calls were stored before the last finished run and not masked again: an agent whose
    # baselines come out the same keeps those pairs' alignment (it reads nothing else).
    stored_baselines: pd.DataFrame | None = None
    stored_agitation_baselines: pd.DataFrame | None = None
    kept_aligned: pd.DataFrame | None = None


def done_calls(con: duckdb.DuckDBPyConnection) -> dict[str, StoredFile]:
    """call_id -> audio hash and file look of calls already processed ok: re-runs skip them."""
    rows = con.execute(
        "SELECT call_id, audio_sha256, file_size, file_mtime_ns FROM call_log WHERE status = 'ok'"
    ).fetchall()
    return {
        call_id: StoredFile(sha, FileLook(size, mtime) if size is not None else None)
        for call_id, sha, size, mtime in rows
    }


def stale_transcripts(
    con: duckdb.DuckDBPyConnection, folder: str, version: int, asr_model: str, limit: int
) -> list[str]:
    """Up to `limit` ok calls read from `folder` whose text an older transcription made: an
    older transcript version, or another Whisper checkpoint; the earliest recorded first, since
    an agent's early calls are the ones older pipelines made."""
    rows = con.execute(
        "SELECT call_id FROM call_log WHERE status = 'ok' AND folder = ? AND "
        "(coalesce(transcript_version, 1) < ? OR asr_model IS DISTINCT FROM ?) "
        "ORDER BY recorded_at, call_id LIMIT ?",
        [folder, version, asr_model, limit],
    ).fetchall()
    return [call_id for (call_id,) in rows]


def load_history(
    con: duckdb.DuckDBPyConnection,
    agents: Sequence[str] | None = None,
    utterance_columns: Sequence[str] | None = None,
    unchanged_since: datetime | None = None,
    changed: Sequence[str] = (),
    kept_columns: Sequence[str] = (),
    settings_sha256: str | None = None,
) -> History:
    """The ok calls of every agent, or of `agents` only (`[]`: the calls without an agent_id):
    every derived figure of an agent comes from that agent's own calls, so a night recomputes
    only the agents it touched.

    `utterance_columns`: the utterance_log columns to read (all when None). utterance_log is the
    history's bulk (100 rows a call, 37 columns) and the derive stage reads about a third of
    them: reading only those roughly halves the load and the frame's memory.

    `unchanged_since` (last_finished's time) with `kept_columns` (call_behaviours columns that
    depend on the call's own text alone): also read those stored rows, and the call's
    utterance_behaviours rows, for the calls stored before then and not `changed` since (text
    masked again), and their call_words rows; with `settings_sha256`, likewise for the calls
    stored since by a run with these settings (their text work was done where they were
    measured: records.CallTextWork). A call without stored rows is simply detected (cut) again."""
    where, params = "l.status = 'ok'", []
    if agents is not None and not agents:  # no agent: the calls stored without an agent_id
        where += " AND l.agent_id IS NULL"
    elif agents is not None:
        where += " AND l.agent_id IN (SELECT unnest(?::VARCHAR[]))"
        params = [list(agents)]
    known = [name for name, _ in TABLE["utterance_log"].columns()]
    if utterance_columns is None:
        utt_select = "u.*"
    else:
        unknown = sorted(set(utterance_columns) - set(known))
        if unknown:
            raise ValueError(f"not utterance_log columns: {unknown}")
        # in the table's order, so a subset reads like a narrower utterance_log
        utt_select = ", ".join(f"u.{c}" for c in known if c in set(utterance_columns))
    return History(
        calls=con.execute(
            "SELECT call_id, agent_id, recorded_at, agent_hired_at, topic "
            f"FROM call_log l WHERE {where}",
            params,
        ).df(),
        utterances=con.execute(
            f"SELECT {utt_select}, l.agent_id FROM utterance_log u "
            f"JOIN call_log l USING (call_id) WHERE {where}",
            params,
        ).df(),
        metrics=con.execute(
            "SELECT f.*, l.agent_id, coalesce(l.transcript_version, 1) AS transcript_version, "
            "l.asr_model FROM call_figures f "
            f"JOIN call_log l USING (call_id) WHERE {where}",
            params,
        ).df(),
        **(
            _kept_behaviours(
                con, where, params, unchanged_since, changed, kept_columns, settings_sha256
            )
            | _kept_alignment(con, where, params, unchanged_since, changed)
            if unchanged_since is not None
            else {}
        ),
    )


def _kept_alignment(
    con: duckdb.DuckDBPyConnection,
    where: str,
    params: list,
    since: datetime,
    changed: Sequence[str],
) -> dict[str, pd.DataFrame]:
    agents = f"SELECT DISTINCT l.agent_id FROM call_log l WHERE {where}"
    # calls whose utterances are as they were when the stored rows were derived: stored before
    # `since` (a call processed again since has new text) and not masked again
    old = (
        f"SELECT l.call_id FROM call_log l WHERE {where} AND l.processed_at <= ? "
        "AND l.call_id NOT IN (SELECT unnest(?::VARCHAR[]))"
    )
    return {
        "stored_baselines": con.execute(
            f"SELECT * FROM agent_baselines WHERE agent_id IN ({agents})", params
        ).df(),
        "stored_agitation_baselines": con.execute(
            f"SELECT * FROM agitation_baselines WHERE agent_id IN ({agents})", params
        ).df(),
        "kept_aligned": con.execute(
            f"WITH old AS ({old}) SELECT a.* FROM aligned_utterances a "
            "WHERE a.early_call_id IN (SELECT call_id FROM old) "
            "AND a.current_call_id IN (SELECT call_id FROM old)",
            [*params, since, list(changed)],
        ).df(),
    }


def _kept_behaviours(
    con: duckdb.DuckDBPyConnection,
    where: str,
    params: list,
    since: datetime,
    changed: Sequence[str],
    columns: Sequence[str],
    settings_sha256: str | None,
) -> dict[str, pd.DataFrame]:
    known = {name for name, _ in TABLE["call_behaviours"].columns()}
    unknown = sorted(set(columns) - known)
    if unknown:
        raise ValueError(f"not call_behaviours columns: {unknown}")
    # the stored rows of calls stored before `since`, or since by a run with these settings, not
    # masked again since
    kept = (
        "WITH kept AS (SELECT l.call_id FROM call_log l "
        f"WHERE {where} AND (l.processed_at <= ? OR l.run_id IN "
        "(SELECT run_id FROM runs WHERE settings_sha256 = ?)) AND "
        "l.call_id NOT IN (SELECT unnest(?::VARCHAR[]))) "
    )
    kept_params = [*params, since, settings_sha256, list(changed)]
    select = ", ".join(f"b.{c}" for c in ["call_id", *columns])
    return {
        "kept_behaviours": con.execute(
            f"{kept}SELECT {select} FROM call_behaviours b JOIN kept USING (call_id)", kept_params
        ).df(),
        "kept_hits": con.execute(
            f"{kept}SELECT h.* FROM utterance_behaviours h JOIN kept USING (call_id)", kept_params
        ).df(),
        "kept_words": con.execute(
            f"{kept}SELECT w.* FROM call_words w JOIN kept USING (call_id)", kept_params
        ).df(),
    }


def agent_batches(
    con: duckdb.DuckDBPyConnection, agents: Sequence[str] | None, max_calls: int
) -> list[list[str]]:
    """`agents` (every agent with an ok call when None) in batches of at most `max_calls` ok
    calls (an agent with more is a batch of its own), in agent order: the derive stage loads and
    recomputes one batch at a time, so its memory follows the batch and not the history. An
    agent asked for without ok calls left is still in a batch: its old rows must go."""
    counts = dict(
        con.execute(
            "SELECT agent_id, count(*) FROM call_log WHERE status = 'ok' AND agent_id IS NOT NULL "
            "GROUP BY agent_id"
        ).fetchall()
    )
    batches: list[list[str]] = []
    size = 0
    for agent in sorted(counts if agents is None else set(agents)):
        n = counts.get(agent, 0)
        if not batches or (size + n > max_calls and batches[-1]):
            batches.append([])
            size = 0
        batches[-1].append(agent)
        size += n
    return batches


def last_finished(con: duckdb.DuckDBPyConnection, settings_sha256: str) -> datetime | None:
    """When the last finished run finished, if it used these settings: every derived row then
    reflected the calls stored before it. None when no run finished, or with other settings, or a
    run with other settings started after it."""
    rows = con.execute(
        """
        SELECT r.settings_sha256, r.finished_at
        FROM runs r
        WHERE r.status IN ('ok', 'ok_with_failures') AND r.finished_at IS NOT NULL
        ORDER BY r.finished_at DESC LIMIT 1"""
    ).fetchall()  # fetchone() would leave DuckDB 2.0's result open on the connection
    if not rows or rows[0][0] != settings_sha256:
        return None
    # a run with other settings since (it died: it did not finish) may have rewritten derived
    # rows, or stored calls' text work, with those settings: none of it can be kept
    other = con.execute(
        "SELECT count(*) FROM runs WHERE started_at > ? AND settings_sha256 IS DISTINCT FROM ?",
        [rows[0][1], settings_sha256],
    ).fetchall()[0][0]
    return None if other else rows[0][1]


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


def changed_agents(con: duckdb.DuckDBPyConnection, settings_sha256: str) -> list[str] | None:
    """The agents whose derived tables no longer reflect their calls: those with a call stored
    after the last finished run (a run that crashed after storing calls leaves them newer), or
    whose pairs name such a call (a call that moved to another agent). None when every agent's
    must be recomputed: no finished run yet, or it used other settings. [] when nothing
    changed: a night with no new call recomputes nothing."""
    since = last_finished(con, settings_sha256)
    return None if since is None else agents_of_calls_after(con, since)


def agents_of_calls_after(con: duckdb.DuckDBPyConnection, when: object) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            """
            WITH changed AS (SELECT call_id, agent_id FROM call_log WHERE processed_at > ?)
            SELECT agent_id FROM changed WHERE agent_id IS NOT NULL
            UNION
            SELECT p.agent_id FROM call_pairs p JOIN changed c
              ON c.call_id IN (p.early_call_id, p.current_call_id)
            ORDER BY 1""",
            [when],
        ).fetchall()
    ]


def agents_of(con: duckdb.DuckDBPyConnection, call_ids: Sequence[str]) -> list[str]:
    """The agents of these calls."""
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT agent_id FROM call_log "
            "WHERE call_id IN (SELECT unnest(?::VARCHAR[])) AND agent_id IS NOT NULL ORDER BY 1",
            [list(call_ids)],
        ).fetchall()
    ]
