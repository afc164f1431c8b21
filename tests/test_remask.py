"""When the PII rules change, text stored under the older rules is masked again on the next run
(docs/CONTRACTS.md, "When the masking rules change"): a real run stores a call; its database is
then put back in the state an earlier release left it in (one utterance as the first masker
stored it, no masker version); the next `callreview run` masks what that masker let through,
adds the span the report mutes, and records the version; a further run changes nothing."""

from __future__ import annotations

import shutil

import duckdb

from pipeline.redact import MASKER_VERSION
from pipeline.store import working_path
from tests.cli_runs import finish, start_run
from tests.conftest import SAMPLES

# What the first masker stored for this sentence: a 13-digit card number before 三天 read as
# a count of days, left whole (the transcripts issue).
OLD_TEXT = "卡号6222021234567三天前还能用"


def _state(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return (
            con.execute(
                "SELECT call_id, utterance_id, text FROM utterance_log ORDER BY 1, 2"
            ).fetchall(),
            con.execute("SELECT * FROM pii_spans ORDER BY ALL").fetchall(),
            con.execute("SELECT call_id, masker_version FROM calls ORDER BY 1").fetchall(),
        )
    finally:
        con.close()


def test_text_masked_by_older_rules_is_masked_again_once(tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    header, first = (SAMPLES / "manifest.csv").read_text(encoding="utf-8").splitlines()[:2]
    shutil.copy(SAMPLES / first.split(",")[0], folder)
    (folder / "manifest.csv").write_text(f"{header}\n{first}\n", encoding="utf-8")
    db = tmp_path / "remask.duckdb"
    finish(start_run(folder, db))
    texts, spans, versions = _state(db)
    assert versions == [(first.split(",")[1], MASKER_VERSION)]
    call_id, utterance_id, _ = texts[0]

    for path in (db, working_path(db)):  # the database as an earlier release left it
        con = duckdb.connect(str(path))
        con.execute(
            "UPDATE utterance_log SET text = ? WHERE call_id = ? AND utterance_id = ?",
            [OLD_TEXT, call_id, utterance_id],
        )
        con.execute("UPDATE call_log SET masker_version = NULL")
        con.close()

    out = finish(start_run(folder, db))
    assert "1 stored calls masked again under new PII rules" in out, out
    texts_after, spans_after, versions_after = _state(db)
    assert texts_after[0] == (call_id, utterance_id, "卡号<CARD>三天前还能用")
    assert texts_after[1:] == texts[1:]  # the other utterances had nothing to mask
    added = [s for s in spans_after if s not in spans]
    assert [(s[0], s[1], s[2], s[3], s[4]) for s in added] == [
        (call_id, utterance_id, "card", 2, 15)
    ]
    utterance = next(u for u in _utterance_times(db) if u[:2] == (call_id, utterance_id))
    assert utterance[2] - 0.3 <= added[0][5] < added[0][6] <= utterance[3] + 0.3  # muted within it
    assert versions_after == [(call_id, MASKER_VERSION)]

    again = finish(start_run(folder, db))
    assert "masked again" not in again
    assert _state(db) == (texts_after, spans_after, versions_after)


def _utterance_times(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT call_id, utterance_id, start_s, end_s FROM utterance_log"
        ).fetchall()
    finally:
        con.close()
