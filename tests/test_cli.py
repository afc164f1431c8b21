"""The `callreview` command: every subcommand has --help; query is read-only."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

CLI = [sys.executable, "-m", "callreview.cli"]


@pytest.mark.parametrize(
    "sub",
    [
        [],
        ["run"],
        ["report"],
        ["query"],
        ["serve"],
        ["models", "prepare"],
        ["config"],
        ["calibrate", "import"],
        ["calibrate", "summary"],
    ],
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
    assert out.returncode == 2 and "no manifest.csv" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


@pytest.mark.parametrize(
    ("manifest", "settings", "message"),
    [
        (
            "path,call_id,agent_id,recorded_at\na.wav,客服,A1,2024-02-01\n".encode("gbk"),
            None,
            "not UTF-8 (line 2",
        ),
        (b"path,call_id\na.wav,c1\n", None, "missing required column(s): agent_id, recorded_at"),
        (
            b"path,call_id,agent_id,recorded_at\n",
            "[audio]\nmax_minutes = 3\n",
            "unknown key 'max_minutes' in [audio]",
        ),
    ],
)
def test_run_refuses_a_whole_run_problem_in_one_line_with_exit_2(
    tmp_path, manifest, settings, message
):
    (tmp_path / "manifest.csv").write_bytes(manifest)
    args = [*CLI, "run", str(tmp_path), "--db", str(tmp_path / "x.duckdb")]
    if settings:
        (tmp_path / "s.toml").write_text(settings, encoding="utf-8")
        args += ["--config", str(tmp_path / "s.toml")]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1


def test_config_shows_each_layer_and_refuses_an_unknown_key_in_one_line(tmp_path):
    """`callreview config` prints the settings in force: the defaults, then a settings file, then
    CALLREVIEW_* variables; a key the settings do not have is refused, naming key and file."""
    import os

    settings = tmp_path / "callreview.toml"
    settings.write_text('[run]\nworkers = 3\ndask_address = "tcp://10.0.0.5:8786"\n', "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREVIEW_")}
    env.update(CALLREVIEW_RUN__SETTLE_S="5", COLUMNS="200")
    out = subprocess.run(
        [*CLI, "config"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    lines = [line.strip() for line in out.stdout.splitlines()]
    assert (
        lines[0] == f"read from: {ROOT / 'pipeline' / 'data' / 'callreview.toml'}, "
        f"{settings}, environment"
    )
    assert "workers = 3" in lines and "settle_s = 5.0" in lines and "chunk_calls = 16" in lines
    assert "dask_address = tcp://10.0.0.5:8786" in lines and "dask_workers = 0" in lines

    settings.write_text("[run]\nworkrs = 3\n", "utf-8")
    bad = subprocess.run(
        [*CLI, "config"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert bad.returncode == 1  # other commands than `run` exit 1 on a bad settings file
    message = " ".join((bad.stdout + bad.stderr).split())
    assert "unknown key 'workrs' in [run]" in message and str(settings) in message
    assert "Traceback" not in message
