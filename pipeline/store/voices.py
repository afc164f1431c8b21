"""Agents' voice prints, kept across runs, and how each call's speech was attributed.

`agent_voice_prints` holds one print per agent (pipeline/mono.py builds and updates them);
`speaker_attribution` one row per processed call, replaced when the call is re-processed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.records import CallInput
from pipeline.rows import AgentVoicePrint, SpeakerAttribution
from pipeline.speakers.options import VoicePrint
from pipeline.store.db import transaction, write_frame


def save_voice_prints(
    con: duckdb.DuckDBPyConnection, prints: Mapping[str, VoicePrint], now: datetime | None = None
) -> None:
    """Replace these agents' prints (the updated prints `pipeline.mono.attribute_chunk`
    returns), in one transaction; other agents' prints are kept."""
    with transaction(con):
        write_voice_prints(con, prints, now)


def write_voice_prints(
    con: duckdb.DuckDBPyConnection, prints: Mapping[str, VoicePrint], now: datetime | None = None
) -> None:
    """save_voice_prints inside the caller's transaction (a run's chunk write)."""
    if not prints:
        return
    now = now or datetime.now()
    rows = [
        AgentVoicePrint(
            agent_id,
            [float(v) for v in np.asarray(p.embedding, dtype=np.float64)],
            int(p.n_calls),
            p.source,
            now,
        )
        for agent_id, p in sorted(prints.items())
    ]
    write_frame(con, "agent_voice_prints", pd.DataFrame([asdict(r) for r in rows]), "agent_id")


def stored_stereo_calls(
    con: duckdb.DuckDBPyConnection, agent_ids: Sequence[str], per_agent: int
) -> list[CallInput]:
    """The first `per_agent` stereo calls stored ok of each agent (earliest recorded first), as
    the manifest rows they came from: what an agent's voice print is built from when the agent's
    first mono call needs one (pipeline/review.py, `stereo_print_embeddings`)."""
    rows = con.execute(
        """SELECT call_id, agent_id, folder, path, recorded_at, agent_hired_at, channels, topic
           FROM call_log
           WHERE status = 'ok' AND channels IN ('agent_left', 'agent_right')
             AND agent_id IN (SELECT unnest(?::VARCHAR[]))
           QUALIFY row_number() OVER (PARTITION BY agent_id ORDER BY recorded_at, call_id) <= ?
           ORDER BY agent_id, recorded_at, call_id""",
        [list(agent_ids), per_agent],
    ).fetchall()
    return [
        CallInput(
            call_id,
            agent_id,
            str(Path(folder) / path),
            path,
            folder,
            recorded_at,
            hired,
            channels,
            topic,
        )
        for call_id, agent_id, folder, path, recorded_at, hired, channels, topic in rows
    ]


def load_voice_prints(
    con: duckdb.DuckDBPyConnection, agent_ids: Iterable[str] | None = None
) -> dict[str, VoicePrint]:
    """agent_id -> stored print, of every agent or of `agent_ids` only."""
    sql = "SELECT agent_id, embedding, n_calls, source FROM agent_voice_prints"
    if agent_ids is None:
        found = con.execute(sql).fetchall()
    else:
        found = con.execute(
            sql + " WHERE agent_id IN (SELECT unnest(?::VARCHAR[]))", [list(agent_ids)]
        ).fetchall()
    return {
        agent_id: VoicePrint(agent_id, np.asarray(emb, dtype=np.float32), int(n), source)
        for agent_id, emb, n, source in found
    }


def save_attributions(
    con: duckdb.DuckDBPyConnection, attributions: Iterable[SpeakerAttribution]
) -> None:
    """Replace these calls' `speaker_attribution` rows, in one transaction."""
    with transaction(con):
        write_attributions(con, attributions)


def write_attributions(
    con: duckdb.DuckDBPyConnection, attributions: Iterable[SpeakerAttribution]
) -> None:
    """save_attributions inside the caller's transaction (a run's chunk write)."""
    frame = pd.DataFrame([asdict(a) for a in attributions])
    write_frame(con, "speaker_attribution", frame, replace_key="call_id")
