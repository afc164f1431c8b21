"""The nightly run's fixed cost: does it grow with the history?

A database already holding N processed calls (10 s cuts of the sample calls, with their
recordings on disk, as `benchmark.py --memory` makes them); a real `prefect server start`, the
deployment made by `callreview deploy` on a process work pool, a real `prefect worker`. Then,
server and worker already up, runs triggered through the API:

  1. 0 new calls: the run's time, and how many stored recordings it had to read (hash);
  2. 10 new calls added to the manifest;
  3. the same 10 calls alone, into a fresh database (what those calls cost by themselves).

Targets (the nightly issue): (1) under 15 s with 0 hash calls; (2) - (3) at most 15 s.
Times are the flow run's own (Prefect's Running -> Completed) and, beside them, from the API
trigger to Completed (worker poll and process start included).

    .venv/bin/python scripts/bench_nightly.py             # 500 calls (about 12 minutes)
    .venv/bin/python scripts/bench_nightly.py --calls 50  # a quick look
    .venv/bin/python scripts/bench_nightly.py --workdir /tmp/n500  # keep (and reuse) the history
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchmark import cuts_folder  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-m", "callreview.cli"]
PREFECT = [sys.executable, "-m", "prefect"]
NEW_CALLS = 10


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_manifest(folder: Path, rows: list[dict[str, str]]) -> None:
    with (folder / "manifest.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# Recordings landed during the day: settled. One landing time for the whole benchmark, so a
# stored recording keeps the mtime it was stored with (a new mtime would mean re-hashing it).
LANDED = time.time() - 3600


def backdate(folder: Path) -> None:
    for p in folder.iterdir():
        os.utime(p, (LANDED, LANDED))


def trigger(deployment_id, parameters: dict | None = None) -> dict:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        t0 = time.monotonic()
        run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
        while True:
            run = client.read_flow_run(run.id)
            if run.state_type and run.state_type.value in ("COMPLETED", "FAILED", "CRASHED"):
                break
            time.sleep(0.2)
        wall = time.monotonic() - t0
        artifacts = client.read_artifacts()
    [artifact] = [a for a in artifacts if a.flow_run_id == run.id]
    assert run.state_type.value == "COMPLETED", run.state
    hashed = next(
        line for line in artifact.data.splitlines() if line.startswith("| stored files re-read")
    )
    processed = next(line for line in artifact.data.splitlines() if "| calls processed" in line)
    return {
        "flow_run_s": round((run.end_time - run.start_time).total_seconds(), 1),
        "trigger_to_completed_s": round(wall, 1),
        "hash_calls": int(hashed.strip("| ").split("|")[-1]),
        "processed": int(processed.strip("| ").split("|")[-1]),
        "state": run.state.message,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=500, help="calls already in the database")
    p.add_argument("--samples", type=Path, default=ROOT / "sample_audio")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--workdir", type=Path, default=None, help="keep the history here; reuse it next time"
    )
    args = p.parse_args()
    result: dict = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "stored_calls": args.calls,
    }
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callreview-n-")))
        else:
            tmp = args.workdir
            tmp.mkdir(parents=True, exist_ok=True)
        folder, alone, db = tmp / "calls", tmp / "alone", tmp / "nightly.duckdb"
        history = tmp / "history.json"  # written once the history run is done
        if not history.exists():
            for p in (folder, alone, tmp / "alone.duckdb", db):
                if p.is_dir():
                    shutil.rmtree(p)
                p.unlink(missing_ok=True)
            cuts_folder(folder, args.calls + NEW_CALLS, args.samples)
            rows = read_manifest(folder)
            alone.mkdir()
            for row in rows[args.calls :]:
                os.link(folder / row["path"], alone / row["path"])
            write_manifest(alone, rows[args.calls :])
            write_manifest(folder, rows[: args.calls])
            backdate(folder)
            backdate(alone)
            print(f"[nightly] callreview run on {args.calls} cut calls", file=sys.stderr)
            t0 = time.monotonic()
            subprocess.run([*CLI, "run", str(folder), "--db", str(db)], check=True, cwd=tmp)
            seconds = round(time.monotonic() - t0, 1)
            history.write_text(json.dumps({"rows": rows, "history_run_s": seconds}), "utf-8")
            shutil.copy(db, tmp / "history.duckdb")
        else:  # back to the history as first stored: no working file of an earlier try
            for p in tmp.glob("*.duckdb*"):
                if p.name != "history.duckdb":
                    p.unlink()
            shutil.copy(tmp / "history.duckdb", db)
        kept = json.loads(history.read_text("utf-8"))
        rows = kept["rows"]
        if len(rows) != args.calls + NEW_CALLS:
            raise SystemExit(f"{tmp} holds a history of {len(rows) - NEW_CALLS} calls")
        write_manifest(folder, rows[: args.calls])
        backdate(folder)
        result["history_run_s"] = kept["history_run_s"]
        result["db_mb"] = round(db.stat().st_size / 2**20, 1)

        shutil.rmtree(tmp / "prefect", ignore_errors=True)  # a fresh server each time
        port = free_port()
        env = {
            **os.environ,
            "PREFECT_HOME": str(tmp / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }
        os.environ.update(env)  # this process's client, too (before Prefect is imported)
        server = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        worker = None
        try:
            for _ in range(240):
                try:
                    with urllib.request.urlopen(env["PREFECT_API_URL"] + "/health", timeout=2):
                        break
                except OSError:
                    time.sleep(0.5)
            subprocess.run(
                [*CLI, "deploy", str(folder), "--db", str(db), "--pool", "bench", "--paused"],
                check=True,
                env=env,
                cwd=tmp,
            )
            worker = subprocess.Popen(
                [*PREFECT, "worker", "start", "--pool", "bench"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                dep = client.read_deployment_by_name("review_calls/nightly").id
            print("[nightly] run with 0 new calls", file=sys.stderr, flush=True)
            trigger(dep)  # warm-up: the first run also starts the worker's first process
            result["zero_new"] = trigger(dep)
            write_manifest(folder, rows)  # the night's 10 new recordings are listed
            backdate(folder)
            print(f"[nightly] run with {NEW_CALLS} new calls", file=sys.stderr, flush=True)
            result["ten_new"] = trigger(dep)
            print(f"[nightly] the {NEW_CALLS} calls alone", file=sys.stderr, flush=True)
            result["ten_alone"] = trigger(
                dep, {"folder": str(alone), "db": str(tmp / "alone.duckdb")}
            )
        finally:
            for proc in (worker, server):
                if proc is not None and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:  # a worker may hang on shutdown
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
    z, t, a = result["zero_new"], result["ten_new"], result["ten_alone"]
    extra = t["flow_run_s"] - a["flow_run_s"]
    lines = [
        f"CPU: {result['cpu']} ({result['cpus']} cores); {args.calls} stored calls "
        f"(database {result['db_mb']} MB, first run {result['history_run_s']} s)",
        "",
        "| run | flow run s | trigger -> completed s | stored files hashed | processed |",
        "|---|---|---|---|---|",
        f"| 0 new calls | {z['flow_run_s']} | {z['trigger_to_completed_s']} | "
        f"{z['hash_calls']} | {z['processed']} |",
        f"| {NEW_CALLS} new calls | {t['flow_run_s']} | {t['trigger_to_completed_s']} | "
        f"{t['hash_calls']} | {t['processed']} |",
        f"| the {NEW_CALLS} calls alone (fresh database) | {a['flow_run_s']} | "
        f"{a['trigger_to_completed_s']} | {a['hash_calls']} | {a['processed']} |",
        "",
        f"- 0 new calls: {z['flow_run_s']} s, {z['hash_calls']} hash calls "
        "(target < 15 s, 0 hash calls)",
        f"- {NEW_CALLS} new calls over {args.calls} stored: {extra:+.1f} s against the same "
        "calls alone (target <= 15 s)",
    ]
    table = "\n".join(lines)
    print(table)
    result["table"] = table
    out = args.out or RESULTS_DIR / (time.strftime("%Y-%m-%d") + f"-nightly-{args.calls}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
