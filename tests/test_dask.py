"""The flow on a real Dask cluster (flows/cluster.py), through the CLI as a user runs it.

- `--dask-workers 2`: a local cluster of two worker processes stores the same rows as the
  plain run, table by table (scripts/compare_dbs.py: floats to 1e-9 relative).
- `--dask-address`: a cluster started on its own (`dask scheduler`, two `dask worker`
  processes); one worker is killed (SIGKILL, with its nanny) while it holds a task of the run:
  its work is done elsewhere, every call is stored exactly once, and the rows are again those of
  the plain run.

Four 10 s cuts of the sample calls keep the three runs to a few minutes on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.cli_runs import differences, finish, start_run
from tests.conftest import ROOT, SAMPLES

N_CALLS = 4


@pytest.fixture(scope="module")
def cuts(tmp_path_factory) -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from benchmark import cuts_folder
    finally:
        sys.path.pop(0)
    return cuts_folder(tmp_path_factory.mktemp("dask") / "calls", N_CALLS, SAMPLES)


@pytest.fixture(scope="module")
def plain(cuts) -> Path:
    db = cuts.parent / "plain.duckdb"
    finish(start_run(cuts, db))
    return db


def _stored(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT call_id, status, (SELECT count(*) FROM utterance_log u "
            "WHERE u.call_id = c.call_id) FROM call_log c ORDER BY call_id"
        ).fetchall()
    finally:
        con.close()


def test_a_local_cluster_stores_what_the_plain_run_stores(cuts, plain):
    db = cuts.parent / "local.duckdb"
    out = finish(start_run(cuts, db, ("--dask-workers", "2")))
    assert f"{N_CALLS} calls processed" in out, out
    assert differences(plain, db) == []
    assert [status for _, status, _ in _stored(db)] == ["ok"] * N_CALLS


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a worker and its nanny are killed together
        env={**os.environ, "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL"},
    )


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_separate_cluster_loses_nothing_when_a_worker_is_killed(cuts, plain, tmp_path):
    from distributed import Client

    info = tmp_path / "scheduler.json"
    scheduler = _start(
        [
            "distributed.cli.dask_scheduler",
            "--scheduler-file",
            str(info),
            "--port",
            "0",
            "--dashboard-address",
            ":0",
        ],
        tmp_path / "scheduler.log",
    )
    workers: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        for k in range(2):
            workers.append(
                _start(
                    [
                        "distributed.cli.dask_worker",
                        "--scheduler-file",
                        str(info),
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--name",
                        f"w{k}",
                    ],
                    tmp_path / f"worker{k}.log",
                )
            )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            db = cuts.parent / "remote.duckdb"
            run = start_run(cuts, db, ("--dask-address", address))
            victim = _worker_with_a_task(client, run)
            by_name = {w["name"]: a for a, w in client.scheduler_info()["workers"].items()}
            killed = next(
                p for p, n in zip(workers, ("w0", "w1"), strict=True) if by_name.get(n) == victim
            )
            _stop(killed, signal.SIGKILL)
            out = finish(run)
        assert f"{N_CALLS} calls processed" in out, out
        stored = _stored(db)
        assert [c for c, _, _ in stored] == sorted(c for c, _, _ in _stored(plain))
        assert all(status == "ok" for _, status, _ in stored)
        assert differences(plain, db) == []
    finally:
        for p in (*workers, scheduler):
            _stop(p)


def _worker_with_a_task(client, run: subprocess.Popen) -> str:  # noqa: ANN001
    """The address of a worker processing one of the run's tasks (waits for one)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()[0][-3000:]
        busy = [w for w, tasks in client.processing().items() if tasks]
        if busy:
            return busy[0]
        time.sleep(0.1)
    raise AssertionError("no task of the run reached a worker in 300 s")
