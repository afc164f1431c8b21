"""The `callreview` command: every subcommand has --help; query is read-only."""

import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "callreview.cli"]


@pytest.mark.parametrize(
    "sub", [[], ["run"], ["report"], ["query"], ["serve"], ["models", "prepare"], ["config"]]
)
def test_help(sub):
    out = subprocess.run([*CLI, *sub, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Usage" in out.stdout


def test_query_reads_and_refuses_to_write(flow_run):
    db = str(flow_run[2])
    out = subprocess.run(
        [
            *CLI,
            "query",
            "--db",
            db,
            "--csv",
            "SELECT agent_id, count(*) AS n FROM calls WHERE status = 'ok' GROUP BY 1 ORDER BY 1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.splitlines()[0] == "agent_id,n"
    bad = subprocess.run(
        [*CLI, "query", "--db", db, "DELETE FROM runs"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "read-only" in bad.stderr.lower()


def test_run_on_a_folder_without_manifest_fails_clearly(tmp_path):
    out = subprocess.run(
        [*CLI, "run", str(tmp_path), "--db", str(tmp_path / "x.duckdb")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1 and "no manifest.csv" in out.stderr
