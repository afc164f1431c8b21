"""A better transcriber must not fake a drift (docs/CONTRACTS.md, "When transcription
changes"): calls an older transcription made are transcribed again by a later run, a capped
number a run ([run] reprocess_per_run) or all of them (`callreview run --reprocess-older`),
and the drift table says when an agent's early and current calls were made differently."""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd

from pipeline.derive import agent_drift
from pipeline.records import TRANSCRIPT_VERSION
from pipeline.store import working_path
from tests.cli_runs import finish, start_run
from tests.conftest import SAMPLES


def _state(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return (
            con.execute("SELECT call_id, transcript_version, run_id FROM calls").fetchall(),
            con.execute(
                "SELECT call_id, utterance_id, text FROM utterances ORDER BY 1, 2"
            ).fetchall(),
        )
    finally:
        con.close()


def _as_an_older_release_left_it(db):
    for path in (db, working_path(db)):
        con = duckdb.connect(str(path))
        con.execute("UPDATE call_log SET transcript_version = NULL")
        con.close()


def test_calls_an_older_transcription_made_are_transcribed_again(tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    header, first = (SAMPLES / "manifest.csv").read_text(encoding="utf-8").splitlines()[:2]
    shutil.copy(SAMPLES / first.split(",")[0], folder)
    (folder / "manifest.csv").write_text(f"{header}\n{first}\n", encoding="utf-8")
    db = tmp_path / "reprocess.duckdb"
    finish(start_run(folder, db))
    (calls, texts) = _state(db)
    call_id, version, run_1 = calls[0]
    assert version == TRANSCRIPT_VERSION

    _as_an_older_release_left_it(db)
    out = finish(start_run(folder, db, reprocess_per_run="0"))  # the cap: none this run
    assert "transcribed again" not in out, out
    assert _state(db)[0] == [(call_id, None, run_1)]

    out = finish(start_run(folder, db, ("--reprocess-older",), reprocess_per_run="0"))
    assert "1 stored calls transcribed again" in out, out
    (calls_after, texts_after) = _state(db)
    assert [(c, v) for c, v, _ in calls_after] == [(call_id, TRANSCRIPT_VERSION)]
    assert calls_after[0][2] != run_1  # stored by the new run
    assert texts_after == texts  # the same recording, the same transcription


def test_the_drift_table_says_when_cohorts_were_transcribed_differently():
    rows = [
        ("A", "early", 1, "base", 10.0),
        ("A", "current", 2, "base", 12.0),
        ("B", "early", 2, "base", 10.0),
        ("B", "current", 2, "base", 11.0),
        ("B", "middle", 1, "base", 30.0),  # neither cohort: does not count
    ]
    metrics = pd.DataFrame(
        rows, columns=["agent_id", "cohort", "transcript_version", "asr_model", "speech_rate"]
    )
    drift = agent_drift(metrics, ["speech_rate"]).set_index("agent_id")
    assert bool(drift.loc["A", "mixed_versions"]) is True
    assert bool(drift.loc["B", "mixed_versions"]) is False
    assert drift.loc["B", "delta"] == 1.0
