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


def test_replacing_some_agents_derived_rows_writes_only_what_changed(tmp_path):
    con = store.connect(tmp_path / "x.duckdb")
    rows = [
        {"pair_id": "a1", "agent_id": "A", "similarity": 0.1},
        {"pair_id": "a2", "agent_id": "A", "similarity": 0.2},
        {"pair_id": "a3", "agent_id": "A", "similarity": None},
        {"pair_id": "a4", "agent_id": "A", "similarity": 0.4},
        {"pair_id": "b1", "agent_id": "B", "similarity": 0.5},
    ]
    store.replace_derived(con, {"call_pairs": pd.DataFrame(rows)})
    before = dict(con.execute("SELECT pair_id, rowid FROM call_pairs").fetchall())
    night = [
        {"pair_id": "a1", "agent_id": "A", "similarity": 0.1},  # as it was
        {"pair_id": "a2", "agent_id": "A", "similarity": 0.25},  # changed
        {"pair_id": "a3", "agent_id": "A", "similarity": None},  # as it was, NULL
        {"pair_id": "a5", "agent_id": "A", "similarity": 0.5},  # new; a4 is gone
    ]
    store.replace_derived(con, {"call_pairs": pd.DataFrame(night)}, agents=["A"])
    got = con.execute(
        "SELECT pair_id, agent_id, similarity, rowid FROM call_pairs ORDER BY pair_id"
    ).fetchall()
    assert [r[:3] for r in got] == [
        ("a1", "A", 0.1),
        ("a2", "A", 0.25),
        ("a3", "A", None),
        ("a5", "A", 0.5),
        ("b1", "B", 0.5),
    ]
    kept = {r[0]: r[3] for r in got}
    assert all(kept[k] == before[k] for k in ("a1", "a3", "b1"))  # untouched rows not rewritten
    assert kept["a2"] != before["a2"]


def test_an_agents_derived_rows_beyond_one_row_group_are_all_written(tmp_path):
    # DuckDB 2.0.0 lost every row here when the comparison table was made by CREATE ... AS
    # SELECT ... LIMIT 0 inside the transaction (more than 122,880 rows inserted into it)
    con = store.connect(tmp_path / "x.duckdb")
    n = 130_000
    frame = pd.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "agent_id": "A"})
    frame["similarity"] = [i / n for i in range(n)]
    store.replace_derived(con, {"call_pairs": frame.iloc[: n // 2]}, agents=["A"])
    store.replace_derived(con, {"call_pairs": frame}, agents=["A"])
    assert con.execute("SELECT count(*), sum(similarity) FROM call_pairs").fetchall() == [
        (n, pytest.approx(frame["similarity"].sum()))
    ]


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


# --- failures and failed calls (issue 7) -------------------------------------------------------


def _known(**kw):
    from datetime import datetime

    from pipeline.records import KnownFields

    fields = {"folder": "/rec", "agent_id": "A1", "recorded_at": datetime(2024, 2, 1)}
    fields |= {"agent_hired_at": None, "channels": None, "topic": None}
    return KnownFields(**(fields | kw))


def test_a_failure_met_again_updates_its_row_instead_of_adding_one(tmp_path):
    from pipeline.records import Failure

    con = store.connect(tmp_path / "x.duckdb")
    failures = [
        Failure("manifest", "audio file not found: 'm.wav'", "c1", "m.wav", 3, _known()),
        Failure("manifest", "empty required field 'call_id'", None, "a.wav", 4),
        Failure("process", "AudioError: empty file (0 bytes)", "c2", "e.wav"),
    ]
    store.write_failures(con, "run-1", failures)
    store.write_failures(con, "run-2", failures + failures[:1])  # met again, and twice
    rows = con.execute("SELECT run_id, call_id FROM failures ORDER BY call_id").fetchall()
    assert rows == [("run-2", "c1"), ("run-2", "c2"), ("run-2", None)]
    store.write_failures(con, "run-3", [Failure("process", "another reason", "c2", "e.wav")])
    assert con.execute("SELECT count(*) FROM failures").fetchone()[0] == 4  # a new failure


def test_a_rejected_manifest_row_keeps_a_failed_call_row_but_never_replaces_an_ok_call(tmp_path):
    from pipeline.records import Failure

    con = store.connect(tmp_path / "x.duckdb")
    ok = pd.DataFrame(
        [{"call_id": "good", "agent_id": "A1", "status": "ok", "run_id": "r0", "path": "g.wav"}]
    )
    store.write_frame(con, "call_log", ok, replace_key="call_id")
    store.write_failures(
        con,
        "r1",
        [
            Failure("manifest", "recorded_at: bad", "bad", "b.wav", 2, _known(recorded_at=None)),
            Failure("manifest", "audio file not found: 'g.wav'", "good", "g.wav", 3, _known()),
            Failure("manifest", "duplicate call_id 'x'", "x", "x.wav", 4),  # no `known`
        ],
    )
    rows = con.execute(
        "SELECT call_id, status, error, agent_id, recorded_at, folder FROM calls ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("bad", "failed", "recorded_at: bad", "A1", None, "/rec"),
        ("good", "ok", None, "A1", None, None),
    ]


def test_hostile_ids_are_stored_verbatim(tmp_path):
    from pipeline.records import Failure
    from tests.hostile import HTML_ID, SQL_ID

    con = store.connect(tmp_path / "x.duckdb")
    store.write_failures(
        con,
        "r1",
        [
            Failure("manifest", "x", i, f"{i}.wav", n, _known())
            for n, i in ((2, SQL_ID), (3, HTML_ID))
        ],
    )
    assert {r[0] for r in con.execute("SELECT call_id FROM calls").fetchall()} == {SQL_ID, HTML_ID}
    assert {r[0] for r in con.execute("SELECT call_id FROM failures").fetchall()} == {
        SQL_ID,
        HTML_ID,
    }


def test_an_older_database_gains_chain_robust_loudness_from_its_stored_figures(tmp_path):
    db = tmp_path / "old.duckdb"
    con = store.connect(db)
    con.execute(
        "INSERT INTO call_figures (call_id, agent_loudness_dbfs, customer_loudness_dbfs) "
        "VALUES ('c1', -20.0, -26.5), ('c2', -18.0, NULL)"
    )
    # as a release before the figure existed left it
    con.execute("ALTER TABLE call_figures DROP COLUMN agent_loudness_vs_customer_db")
    con.close()
    con = store.connect(db)
    rows = con.execute(
        "SELECT call_id, agent_loudness_vs_customer_db FROM call_figures ORDER BY call_id"
    ).fetchall()
    assert rows == [("c1", 6.5), ("c2", None)]
