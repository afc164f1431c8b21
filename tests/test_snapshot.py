"""Analysts beside the run, and crashes: the run writes a private working file and publishes
a consistent snapshot when done, so an open reader never blocks it; kill -9 at any moment, then
a re-run, leaves exactly the rows of an uninterrupted run (real runs, real Whisper)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.cli_runs import CLI, differences, finish, start_run
from tests.folders import short_calls_folder

pytestmark = pytest.mark.slow

CALLS = ["A01-E-refund", "A01-C-refund", "A02-E-billing"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return short_calls_folder(tmp_path_factory.mktemp("snap") / "calls", CALLS)


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory) -> tuple[Path, float]:
    """An uninterrupted run, and how long it took."""
    db = tmp_path_factory.mktemp("ref") / "ref.duckdb"
    started = time.monotonic()
    finish(start_run(folder, db))
    return db, time.monotonic() - started


def test_killed_runs_resume_to_exactly_the_rows_of_an_uninterrupted_run(
    folder, reference, tmp_path
):
    ref_db, ref_seconds = reference
    db = tmp_path / "killed.duckdb"
    rng = random.Random(7)
    kills = []
    for _ in range(5):
        proc = start_run(folder, db)
        at = rng.uniform(1.0, ref_seconds * 1.1)
        try:
            proc.wait(timeout=at)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its Prefect server, no clean-up
            proc.wait()
            kills.append(round(at, 1))
        else:
            proc.communicate()
    assert len(kills) >= 3, f"runs finished before the kill: {kills}"
    out = finish(start_run(folder, db))
    assert "0 failed" in out
    assert differences(ref_db, db) == []
    con = duckdb.connect(str(db), read_only=True)
    dupes = con.execute("SELECT count(*) - count(DISTINCT call_id) FROM calls").fetchone()[0]
    statuses = {r[0] for r in con.execute("SELECT status FROM runs").fetchall()}
    con.close()
    assert dupes == 0 and statuses <= {"ok", "interrupted"}, statuses
    # An unchanged folder: nothing transcribed, no data row added.
    again = finish(start_run(folder, db))
    assert f"0 calls processed, {len(CALLS)} already done" in again
    assert differences(ref_db, db) == []


def test_an_open_reader_never_blocks_the_run_and_queries_answer_during_it(folder, tmp_path):
    db = tmp_path / "shared.duckdb"
    first = short_calls_folder(tmp_path / "first", CALLS[:1])
    finish(start_run(first, db))  # something published for the analyst to open
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            "con = duckdb.connect(sys.argv[1], read_only=True)\n"
            "n = con.execute('SELECT count(*) FROM calls').fetchone()[0]\n"
            "print(n, flush=True)\n"
            "sys.stdin.readline()\n"  # hold the connection until told to stop
            "print(con.execute('SELECT count(*) FROM calls').fetchone()[0], flush=True)\n",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline().strip() == "1"
    run = start_run(folder, db)
    answers = []
    while run.poll() is None:  # a third process queries while the run is going
        q = subprocess.run(
            [*CLI, "query", "--db", str(db), "--csv", "SELECT count(*) AS n FROM calls"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert q.returncode == 0, q.stderr
        answers.append(int(q.stdout.splitlines()[1]))
        time.sleep(2)
    out = finish(run)
    # the first call is the same recording as before (same content hash): not redone
    assert f"{len(CALLS) - 1} calls processed, 1 already done, 0 not settled, 0 failed" in out
    reader.stdin.write("\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "1"  # the reader kept the snapshot it opened
    reader.wait(timeout=30)
    assert answers and all(n in (1, len(CALLS)) for n in answers)  # never half a run
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM calls").fetchone()[0] == len(CALLS)
    con.close()
