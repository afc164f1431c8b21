"""The nightly run as operators run it: a real `prefect server start`, the deployment served by
`callreview serve` or deployed by `callreview deploy` onto a process work pool run by a real
`prefect worker`, runs fired by the server's scheduler or through the API, and what nights
bring (a file still being copied, an impossible device or model, two runs at once, missed
nights). Nothing is mocked: each test talks to the server over HTTP and reads the DuckDB file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.folders import short_calls_folder

CLI = [sys.executable, "-m", "callreview.cli"]
PREFECT = [sys.executable, "-m", "prefect"]
CALLS = ["A01-E-refund", "A02-C-refund"]  # two agents, 6 s each: a run takes seconds
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> str:
    """Stop a child started in its own session (it and whatever it started)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.stdout.read() if proc.stdout else ""


def _start(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        env=env,
        cwd=cwd,
        stdout=open(log, "w"),  # noqa: SIM115  (the child owns it)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A real Prefect server on a free local port, with a database of its own. The scheduler
    creates two runs ahead per schedule when a deployment is made and then waits an hour, so
    the runs a test sees are exactly the ones its deployment created."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_API_SERVICES_SCHEDULER_MIN_RUNS": "2",
        "PREFECT_API_SERVICES_SCHEDULER_MAX_RUNS": "2",
        "PREFECT_API_SERVICES_SCHEDULER_LOOP_SECONDS": "3600",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "3600",
    }
    proc = _start(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        home,
        home / "server.log",
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"prefect server did not start:\n{(home / 'server.log').read_text()}")
        time.sleep(0.5)
    client_env = {**env, "PREFECT_API_URL": url, "CALLREVIEW_RUN__SETTLE_S": "0"}
    for key in list(client_env):
        if key.startswith(("PREFECT_API_SERVICES", "PREFECT_SERVER_SERVICES")):
            del client_env[key]
    yield client_env
    _stop(proc)


def _client(env: dict[str, str]):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
        from prefect.client.orchestration import get_client

        client = get_client(sync_client=True)
    assert isinstance(client, SyncPrefectClient)
    return client


def _runs(env: dict[str, str], deployment_id) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with _client(env) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def _deployment_id(env: dict[str, str], name: str = "review_calls/nightly"):
    with _client(env) as client:
        return client.read_deployment_by_name(name).id


def _wait(condition, timeout: float, what: str, logs: list[Path] = ()) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    text = "\n".join(f"--- {p}\n{p.read_text()[-4000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{text}")


def _calls(db: Path) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT call_id, status FROM calls").fetchall())
    finally:
        con.close()


def _db_runs(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT n_ok, n_skipped, n_failed, status FROM runs ORDER BY started_at"
        ).fetchall()
    finally:
        con.close()


def _folder(root: Path, corrupt: bool = False) -> Path:
    folder = short_calls_folder(root / "recordings", CALLS, seconds=6.0)
    if corrupt:
        (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
        with open(folder / "manifest.csv", "a", encoding="utf-8") as f:
            f.write("corrupt.wav,BAD-corrupt,A01,2026-11-01T10:00:00,,agent_left,refund,\n")
    return folder


def test_a_scheduled_run_fires_on_a_real_server_and_stores_the_calls(server, tmp_path):
    """`callreview serve` with a schedule due within a minute: the server's scheduler creates
    the run, the served process runs it, the calls land in the database."""
    folder, db = _folder(tmp_path), tmp_path / "nightly.duckdb"
    log = tmp_path / "serve.log"
    proc = _start(
        [*CLI, "serve", str(folder), "--db", str(db), "--cron", "* * * * *"], server, tmp_path, log
    )
    try:
        dep = _wait(lambda: _try_deployment(server), 120, "the served deployment", [log])

        def finished():
            done = [
                r for r in _runs(server, dep) if r.state_type and r.state_type.value in TERMINAL
            ]
            return done or None

        [run, *_] = _wait(finished, 200, "a scheduled run to finish", [log])
    finally:
        out = _stop(proc)
    assert run.auto_scheduled, "the run was not created by the schedule"
    assert run.state_type.value == "COMPLETED", (run.state, log.read_text()[-4000:], out)
    assert _calls(db) == dict.fromkeys(CALLS, "ok")
    assert run.parameters["folder"] == str(folder.resolve())


def _try_deployment(env):
    from prefect.exceptions import ObjectNotFound

    try:
        return _deployment_id(env)
    except ObjectNotFound:
        return None


@pytest.fixture(scope="module")
def pool_deployment(server, tmp_path_factory):
    """`callreview deploy` onto a process work pool, and a real `prefect worker` for it."""
    root = tmp_path_factory.mktemp("pool")
    folder, db = _folder(root, corrupt=True), root / "pool.duckdb"
    out = subprocess.run(
        [*CLI, "deploy", str(folder), "--db", str(db), "--pool", "test-pool"]
        + ["--cron", "0 3 1 1 *", "--timezone", "Asia/Shanghai"],
        env=server,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    log = root / "worker.log"
    worker = _start(
        [*PREFECT, "worker", "start", "--pool", "test-pool", "--limit", "4"], server, root, log
    )
    yield _deployment_id(server), folder, db, log
    _stop(worker)


def _run_and_wait(env, ids, logs, timeout=400) -> list:
    def finished():
        with _client(env) as client:
            runs = [client.read_flow_run(i) for i in ids]
        return runs if all(r.state_type.value in TERMINAL for r in runs) else None

    return _wait(finished, timeout, "the runs to finish", logs)


def test_a_work_pool_run_completes_and_its_artifact_names_the_calls(server, pool_deployment):
    dep, folder, db, log = pool_deployment
    with _client(server) as client:
        deployment = client.read_deployment(dep)
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
        [schedule] = deployment.schedules
        assert schedule.schedule.cron == "0 3 1 1 *"
        assert schedule.schedule.timezone == "Asia/Shanghai"
        created = client.create_flow_run_from_deployment(dep)
    [run] = _run_and_wait(server, [created.id], [log])
    assert run.state_type.value == "COMPLETED", run.state
    assert "1 input(s) failed" in run.state.message
    assert _calls(db) == {**dict.fromkeys(CALLS, "ok"), "BAD-corrupt": "failed"}
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with _client(server) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert artifact.key == "callreview-run" and artifact.type == "markdown"
    text = artifact.data
    assert "| calls processed | 2 |" in text and "| failed | 1 |" in text
    assert all(f"`{c}`" in text for c in CALLS)
    assert "BAD-corrupt" in text and "unreadable audio" in text


def test_two_runs_at_once_never_write_together(server, pool_deployment):
    """Fired together, the second waits (ENQUEUE) until the first ends, then finds nothing new;
    every call is stored once."""
    dep, folder, db, log = pool_deployment
    [extra] = short_calls_folder(folder.parent / "more", ["A01-C-refund"], 6.0).glob("*.wav")
    shutil.copy(extra, folder / extra.name)
    row = next(line for line in (extra.parent / "manifest.csv").read_text().splitlines()[1:])
    with open(folder / "manifest.csv", "a", encoding="utf-8") as f:
        f.write(row + "\n")
    before = len(_db_runs(db))
    with _client(server) as client:
        ids = [client.create_flow_run_from_deployment(dep).id for _ in range(2)]
    runs = _run_and_wait(server, ids, [log])
    assert [r.state_type.value for r in runs] == ["COMPLETED", "COMPLETED"], [r.state for r in runs]
    first, second = sorted(runs, key=lambda r: r.start_time)
    assert second.start_time >= first.end_time, "the two runs overlapped"
    new_runs = _db_runs(db)[before:]
    assert [(n_ok, n_skipped) for n_ok, n_skipped, _, _ in new_runs] == [(1, 2), (0, 3)]
    con = duckdb.connect(str(db), read_only=True)
    try:
        per_call = con.execute("SELECT call_id, count(*) FROM call_log GROUP BY 1").fetchall()
    finally:
        con.close()
    assert {c for c, _ in per_call} == {*CALLS, "A01-C-refund", "BAD-corrupt"}
    assert all(n == 1 for _, n in per_call)


def test_missed_nights_are_run_once(server, pool_deployment, tmp_path):
    """Scheduled runs that fell due while no worker ran (the server or worker was down): when
    the worker comes back, only the latest does the work; the earlier ones end at once."""
    from prefect.schedules import Interval

    from flows.deploy import ENTRYPOINT, REPO_DIR, one_at_a_time
    from flows.review import review_calls

    folder, db = _folder(tmp_path), tmp_path / "missed.duckdb"
    with _client(server) as client:
        from prefect.client.schemas.actions import WorkPoolCreate

        client.create_work_pool(WorkPoolCreate(name="missed-pool", type="process"))
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):
        dep = review_calls.from_source(source=str(REPO_DIR), entrypoint=ENTRYPOINT).deploy(
            name="missed",
            work_pool_name="missed-pool",
            schedules=[Interval(timedelta(seconds=8))],
            parameters={"folder": str(folder), "db": str(db)},
            concurrency_limit=one_at_a_time(),
            build=False,
            push=False,
            print_next_steps=False,
        )
    scheduled = _wait(lambda: len(_runs(server, dep)) >= 2 and _runs(server, dep), 60, "2 runs")
    last_due = max(r.expected_start_time for r in scheduled)
    from datetime import datetime

    time.sleep(max(0.0, (last_due - datetime.now(UTC)).total_seconds()) + 2)
    log = tmp_path / "worker.log"
    worker = _start([*PREFECT, "worker", "start", "--pool", "missed-pool"], server, tmp_path, log)
    try:
        runs = _run_and_wait(server, [r.id for r in scheduled], [log])
    finally:
        _stop(worker)
    assert all(r.state_type.value == "COMPLETED" for r in runs), [r.state for r in runs]
    earlier, latest = sorted(runs, key=lambda r: r.expected_start_time)
    assert earlier.state.message.startswith("skipped: a later scheduled run")
    assert "processed" in latest.state.message
    assert [row[0] for row in _db_runs(db)] == [2]  # one run stored the calls, once


def _run_cli(folder: Path, db: Path, *flags: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [*CLI, "run", str(folder), "--db", str(db), *flags],
        env={**os.environ, **(env or {})},
        cwd=folder.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _backdate(*paths: Path, seconds: float = 3600) -> None:
    """Files that landed earlier in the day."""
    when = time.time() - seconds
    for p in paths:
        os.utime(p, (when, when))


def test_a_recording_still_being_copied_waits_for_the_next_run(tmp_path):
    folder = short_calls_folder(tmp_path / "recordings", ["A01-E-refund"], 6.0)
    late = short_calls_folder(tmp_path / "incoming", ["A02-C-refund"], 6.0)
    [wav] = late.glob("*.wav")
    data = wav.read_bytes()
    with open(folder / "manifest.csv", "a", encoding="utf-8") as f:
        f.write((late / "manifest.csv").read_text(encoding="utf-8").splitlines()[1] + "\n")
    _backdate(folder / "manifest.csv", *folder.glob("*.wav"))
    target = folder / wav.name
    hurry = threading.Event()

    def copy_slowly() -> None:  # as a slow share would: a piece every 0.25 s, for minutes
        step = max(1, len(data) // 2000)
        with open(target, "wb") as f:
            for i in range(0, len(data), step):
                f.write(data[i : i + step])
                f.flush()
                if not hurry.is_set():
                    time.sleep(0.25)

    copier = threading.Thread(target=copy_slowly)
    copier.start()
    try:
        db = tmp_path / "settle.duckdb"
        first = _run_cli(folder, db, env={"CALLREVIEW_RUN__SETTLE_S": "3"})
    finally:
        hurry.set()
        copier.join()
    out = " ".join(first.stdout.split())
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 calls processed" in out and "1 not settled" in out
    assert "left for the next run call 'A02-C-refund': not settled" in out
    assert _calls(db) == {"A01-E-refund": "ok"}
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM failures").fetchone() == (0,)
    con.close()
    assert target.read_bytes() == data
    time.sleep(3.5)  # the copy is done and has settled
    second = _run_cli(folder, db, env={"CALLREVIEW_RUN__SETTLE_S": "3"})
    assert second.returncode == 0, second.stdout + second.stderr
    assert _calls(db) == {"A01-E-refund": "ok", "A02-C-refund": "ok"}


def test_unchanged_recordings_are_skipped_without_reading_them(tmp_path):
    """Same size and mtime: skipped unread (a changed file that kept both is not noticed, as
    documented); a touched file is hashed once, found unchanged, and skipped unread after."""
    folder = short_calls_folder(tmp_path / "recordings", ["A01-E-refund"], 6.0)
    db = tmp_path / "looks.duckdb"
    assert _run_cli(folder, db).returncode == 0
    [wav] = folder.glob("*.wav")
    stat = wav.stat()
    original = wav.read_bytes()
    wav.write_bytes(original[:-2000] + bytes(2000))  # new audio, same size ...
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and the same mtime
    out = " ".join(_run_cli(folder, db).stdout.split())
    assert "0 calls processed, 1 already done" in out
    wav.write_bytes(original)
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, same content
    con = duckdb.connect(str(db), read_only=True)
    before = con.execute("SELECT file_size, file_mtime_ns FROM calls").fetchone()
    con.close()
    assert before == (stat.st_size, stat.st_mtime_ns)
    out = " ".join(_run_cli(folder, db).stdout.split())
    assert "0 calls processed, 1 already done" in out
    con = duckdb.connect(str(db), read_only=True)
    after = con.execute("SELECT file_size, file_mtime_ns FROM calls").fetchone()
    con.close()
    assert after == (stat.st_size, stat.st_mtime_ns + 10**9)  # the next run skips it unread


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (("--device", "cuda"), {}, "no CUDA device"),
        # a real model name whose download cannot reach anything (a closed local proxy port)
        (
            ("--model", "large-v3"),
            {
                "https_proxy": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9",
                "no_proxy": "127.0.0.1,localhost",  # the run's own temporary Prefect server
                "NO_PROXY": "127.0.0.1,localhost",
            },
            "cannot be loaded here",
        ),
        (("--device", "tpu"), {}, "unknown device"),
    ],
)
def test_an_impossible_run_is_refused_before_any_call(tmp_path, flags, env, expected):
    import torch

    if flags[1] == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is possible here")
    folder = short_calls_folder(tmp_path / "recordings", ["A01-E-refund"], 6.0)
    db = tmp_path / "refused.duckdb"
    out = _run_cli(folder, db, *flags, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], out.stderr
    assert not db.exists() and not Path(str(db) + ".work").exists()  # nothing failed, stored


def test_a_missing_or_empty_folder_fails_the_run_in_one_line(tmp_path):
    db = tmp_path / "x.duckdb"
    (tmp_path / "empty").mkdir()
    for folder, expected in ((tmp_path / "unmounted", "does not exist"), (tmp_path / "empty", "")):
        out = _run_cli(folder, db)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert out.returncode == 2 and len(lines) == 1 and expected in lines[0], out.stderr
    assert not db.exists()
