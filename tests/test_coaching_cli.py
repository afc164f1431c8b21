"""Coaching events and outcomes through the database and the command line: `calibrate session`
records an event and prints its outcomes, `calibrate import` takes events from sessions (a
session whose name is not a date needs --date), analysts read the `coaching_outcomes` view."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from pipeline import store
from pipeline.calibration import import_file
from pipeline.coaching.records import CoachingEvent
from pipeline.coaching.refresh import refresh_outcomes
from pipeline.config import default_config
from pipeline.store import coaching as coaching_db
from tests.test_calibration import HELD, RUBRIC, SCORES, exported, write_json
from tests.test_coaching import EVENT, crafted_calls
from tests.test_report import AGENT, build_db

CLI = [sys.executable, "-m", "callreview.cli"]
ENV = {**os.environ, "COLUMNS": "250"}


def write_calls(db: Path, calls: pd.DataFrame) -> None:
    """Crafted call figures stored as a run would: call_log, call_figures, call_derived."""
    c = calls.assign(call_id=[f"k{n}" for n in range(len(calls))])
    con = store.connect(db)
    try:
        log = c[["call_id", "agent_id", "recorded_at"]].assign(
            status="ok", folder="/nowhere", path=c["call_id"] + ".wav"
        )
        store.write_frame(con, "call_log", log)
        store.write_frame(con, "call_figures", c[["call_id", "agent_politeness_per_min"]])
        store.write_frame(con, "call_derived", c[["call_id", "cohort", "agitation"]])
    finally:
        con.close()


def event_again() -> CoachingEvent:
    return CoachingEvent("C1", EVENT, "session", "later", datetime.now())


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=ENV)


@pytest.fixture(scope="module")
def improved_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("coaching") / "calls.duckdb"
    write_calls(db, crafted_calls(-1.0))
    return db


def test_session_command_records_an_event_and_prints_its_outcomes(improved_db: Path) -> None:
    out = run(
        "calibrate", "session", "--agent", "C1", "--date", str(EVENT), "--db", str(improved_db)
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"recorded: coaching event for C1 on {EVENT}" in out.stdout
    cells = [[c.strip() for c in line.split("│")] for line in out.stdout.splitlines()]
    verdict = {c[3]: c[10] for c in cells if len(c) > 10 and c[1] == "C1"}
    assert verdict["agitation"] == verdict["agent_politeness_per_min"] == "improved"
    assert verdict["agent_speech_rate_cpm"] == "too few calls yet"  # no such figures stored
    con = store.connect(improved_db)
    try:
        assert coaching_db.save_events(con, [event_again()]) == 0  # kept once
        row = con.execute(
            "SELECT agent_id, event_date, source, verdict, n_before, n_after, comparison_agents "
            "FROM coaching_outcomes WHERE figure = 'agitation'"
        ).fetchall()
    finally:
        con.close()
    assert row == [("C1", EVENT, "command", "improved", 120, 120, 4)]
    # the run's recompute of every coached agent gives the same rows: each outcome draws its
    # bootstrap from its own seed, whoever else is recomputed with it
    con = store.connect(improved_db)
    try:
        before = con.execute("SELECT * FROM coaching_results ORDER BY ALL").df()
        refresh_outcomes(con, default_config().coaching)
        after = con.execute("SELECT * FROM coaching_results ORDER BY ALL").df()
    finally:
        con.close()
    pd.testing.assert_frame_equal(after, before)


def test_session_command_refuses_an_unknown_agent(improved_db: Path) -> None:
    out = run(
        "calibrate", "session", "--agent", "Z9", "--date", str(EVENT), "--db", str(improved_db)
    )
    assert out.returncode != 0 and "no calls of agent 'Z9'" in out.stdout + out.stderr


def test_import_takes_the_event_from_the_session_and_needs_a_date_when_the_name_is_not_one(
    tmp_path: Path,
) -> None:
    db = build_db(tmp_path)
    files = [str(write_json(tmp_path, exported(e))) for e in SCORES]
    refused = run("calibrate", "import", *files, "--db", str(db))
    assert refused.returncode == 1 and refused.stdout.count("refused") == 3
    assert "is not a date (YYYY-MM-DD): give the day it was held with --date" in refused.stdout
    done = run("calibrate", "import", *files, "--db", str(db), "--date", str(HELD))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"coaching event on {HELD}: {AGENT}" in done.stdout
    dated = exported("王芳") | {"session": "2026-11-27 团队复盘"}
    con = store.connect(db)
    try:  # a session named by its date needs no --date
        result = import_file(con, write_json(tmp_path, dated, "dated.json"), RUBRIC)
        assert result.status == "imported" and result.event_date == date(2026, 11, 27)
        events = con.execute(
            "SELECT DISTINCT agent_id, event_date::VARCHAR, source, session "
            "FROM coaching_outcomes ORDER BY 2"
        ).fetchall()
    finally:
        con.close()
    assert events == [
        (AGENT, str(HELD), "session", "2026-Q4 校准"),
        (AGENT, "2026-11-27", "session", "2026-11-27 团队复盘"),
    ]


def test_events_recorded_between_runs_survive_the_next_run(tmp_path: Path) -> None:
    """`calibrate session` and `calibrate import` write the published file; the next run starts
    from its own working file, and must carry those rows over, not publish over them."""
    db = tmp_path / "r.duckdb"
    store.publish(store.open_for_run(db), db)  # a run: the working file stays beside db
    con = store.connect(db)
    try:
        coaching_db.save_events(con, [event_again()])
    finally:
        con.close()
    reader = store.connect(db, read_only=True)  # an analyst meanwhile
    try:
        store.publish(store.open_for_run(db), db)  # the next run
    finally:
        reader.close()
    con = store.connect(db, read_only=True)
    try:
        assert con.execute("SELECT agent_id, event_date FROM coaching_events").fetchall() == [
            ("C1", EVENT)
        ]
    finally:
        con.close()


@pytest.mark.parametrize(
    ("move_sd", "expected"), [(-1.0, "improved"), (0.0, "no clear change"), (1.0, "worse")]
)
def test_crafted_databases_where_coaching_helped_did_nothing_and_made_worse(
    tmp_path: Path, move_sd: float, expected: str
) -> None:
    """The stored path end to end (calls in the tables, an event, the recompute a run does, the
    analysts' view) on crafted databases, a season shifting every agent meanwhile."""
    db = tmp_path / "calls.duckdb"
    write_calls(db, crafted_calls(move_sd, seed=11))
    con = store.connect(db)
    try:
        coaching_db.save_events(con, [event_again()])
        refresh_outcomes(con, default_config().coaching)
        rows = con.execute(
            "SELECT figure, verdict FROM coaching_outcomes "
            "WHERE figure IN ('agitation', 'agent_politeness_per_min') ORDER BY figure"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("agent_politeness_per_min", expected), ("agitation", expected)]
