"""Masking stored text again when the PII rules change (docs/CONTRACTS.md, "When the masking
rules change"): the utterances of calls masked under an older rules version, and the write that
replaces their text, adds the spans found now and records the new version, in one transaction.
Idempotent: a call is read again only while its version is older than the rules'."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import duckdb
import pandas as pd

from pipeline.records import Utterance
from pipeline.rows import PiiSpan
from pipeline.store.db import transaction, update_from_frame


def stale_masked(
    con: duckdb.DuckDBPyConnection, version: int, limit: int | None = None
) -> dict[str, list[Utterance]]:
    """The stored utterances of up to `limit` ok calls masked before `version`, by call."""
    rows = con.execute(
        """
        WITH stale AS (
          SELECT call_id FROM call_log
          WHERE status = 'ok' AND coalesce(masker_version, 1) < ?
          ORDER BY call_id LIMIT ?)
        SELECT s.call_id, u.utterance_id, u.speaker, u.start_s, u.end_s, u.text
        FROM stale s LEFT JOIN utterance_log u USING (call_id)
        ORDER BY s.call_id, u.utterance_id""",
        [version, limit if limit is not None else 2**62],
    ).fetchall()
    calls: dict[str, list[Utterance]] = {}
    for call_id, utterance_id, speaker, start_s, end_s, text in rows:
        utterances = calls.setdefault(call_id, [])  # a call with no speech has none
        if utterance_id is not None:
            utterances.append(Utterance(call_id, utterance_id, speaker, start_s, end_s, text))
    return calls


def save_remasked(
    con: duckdb.DuckDBPyConnection,
    version: int,
    call_ids: Sequence[str],
    changed: Sequence[Utterance],
    spans: Sequence[PiiSpan],
) -> None:
    """The calls' utterances whose text changed, the spans masked now (muted in clips with the
    spans stored before; where one starts at the same character it widens that one), and the
    calls' new version."""
    with transaction(con):
        frame = pd.DataFrame(
            [(u.call_id, u.utterance_id, u.text) for u in changed],
            columns=["call_id", "utterance_id", "text"],
        )
        update_from_frame(con, "utterance_log", frame, ("call_id", "utterance_id"))
        if spans:
            con.register("_spans", pd.DataFrame([asdict(s) for s in spans]))
            try:
                con.execute(
                    "INSERT INTO pii_spans BY NAME SELECT * FROM _spans "
                    "ON CONFLICT DO UPDATE SET start_s = least(start_s, excluded.start_s), "
                    "end_s = greatest(end_s, excluded.end_s)"
                )
            finally:
                con.unregister("_spans")
        con.execute(
            "UPDATE call_log SET masker_version = ? WHERE call_id IN (SELECT unnest(?::VARCHAR[]))",
            [version, list(call_ids)],
        )
