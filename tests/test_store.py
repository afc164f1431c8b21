"""The DuckDB file: schema and views, replace-by-key writes, read-only access and lock errors."""

import subprocess
import sys

import pandas as pd
import pytest

from pipeline import store

VIEWS = {"calls", "utterances", "call_metrics"}
TABLES = {"runs", "failures", "agent_drift", "call_pairs", "aligned_utterances"}


def test_schema_has_every_contract_name(tmp_path):
    con = store.connect(tmp_path / "x.duckdb")
    names = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    assert names >= VIEWS | TABLES
    cols = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'calls'"
        ).fetchall()
    }
    assert {
        "call_id",
        "agent_id",
        "recorded_at",
        "tenure_days",
        "cohort",
        "duration_s",
        "status",
        "error",
    } <= cols


def test_write_frame_replaces_rows_with_the_same_key(tmp_path):
    con = store.connect(tmp_path / "x.duckdb")
    store.write_frame(
        con,
        "call_pairs",
        pd.DataFrame([{"pair_id": "p", "agent_id": "A", "similarity": 0.1}]),
        replace_key="pair_id",
    )
    store.write_frame(
        con,
        "call_pairs",
        pd.DataFrame([{"pair_id": "p", "agent_id": "A", "similarity": 0.9}]),
        replace_key="pair_id",
    )
    assert con.execute("SELECT similarity FROM call_pairs").fetchall() == [(0.9,)]


def test_reader_in_another_process_gives_a_clear_lock_error(tmp_path):
    db = tmp_path / "x.duckdb"
    store.connect(db).close()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
                "print('open', flush=True); time.sleep(30)"
            ),
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        with pytest.raises(store.StoreLockedError, match="one writer"):
            store.connect(db)
    finally:
        reader.kill()


def test_read_only_connection_needs_an_existing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="callreview run"):
        store.connect(tmp_path / "none.duckdb", read_only=True)
