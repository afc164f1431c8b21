"""Real `callreview run`s over a folder of stereo and mono calls: every processed call gets its
`speaker_attribution` row (how its speech was given to agent and customer), as the contract says,
and an agent's voice print is built only when their first mono call needs one, from the stereo
calls an earlier run stored."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import duckdb

from pipeline import mono
from pipeline.config import default_config
from pipeline.manifest import read_manifest
from pipeline.vad import load_vad_model
from tests.folders import mix_to_mono, short_calls_folder, write_manifest

CLI = [sys.executable, "-m", "callreview.cli"]
STEREO = ["A01-E-refund"]
MONO = ["A01-C-refund", "A01-E-billing"]  # recorded as one mix, as older systems store calls


def _run(folder: Path, db: Path) -> None:
    out = subprocess.run(
        [*CLI, "run", str(folder), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder.parent,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mono_calls_after_stereo_ones_get_a_print_built_from_the_stored_stereo_calls(tmp_path):
    folder = short_calls_folder(tmp_path / "recordings", STEREO + MONO, seconds=20.0)
    mix_to_mono(folder, MONO)
    with open(folder / "manifest.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    db = tmp_path / "mixed.duckdb"

    write_manifest(folder, [r for r in rows if r["call_id"] in STEREO])  # the first night
    _run(folder, db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        prints = con.execute("SELECT count(*) FROM agent_voice_prints").fetchone()[0]
    finally:
        con.close()
    assert prints == 0  # stereo calls only: no agent needs a print yet, none is embedded

    write_manifest(folder, rows)  # the next night brings A01's first mono calls
    _run(folder, db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = dict(
            con.execute(
                "SELECT c.call_id, a.method FROM calls c LEFT JOIN speaker_attribution a "
                "USING (call_id) WHERE c.status = 'ok'"
            ).fetchall()
        )
        n_rows = con.execute("SELECT count(*) FROM speaker_attribution").fetchone()[0]
        behind = dict(
            con.execute("SELECT call_id, print_calls FROM speaker_attribution").fetchall()
        )
        channels = dict(con.execute("SELECT call_id, channels FROM calls").fetchall())
        prints = con.execute("SELECT agent_id, n_calls, source FROM agent_voice_prints").fetchall()
        processed = con.execute(
            "SELECT count(DISTINCT run_id) FROM calls WHERE call_id IN (SELECT unnest(?))",
            [MONO],
        ).fetchone()[0]
    finally:
        con.close()
    assert set(got) == set(STEREO + MONO) and n_rows == len(got)
    assert {got[c] for c in STEREO} == {"stereo"}
    # The print built from the stored stereo call decides both mono calls (margins 0.18 and
    # 0.26 when written, against print_margin 0.01).
    assert all(got[c] == "voice_print" for c in MONO), got
    assert all(behind[c] == 1 + len(MONO) for c in MONO), behind  # the print's call + the chunk's
    assert all(channels[c] == "mono" for c in MONO)
    assert processed == 1
    # Built from the stereo call the first night stored, read again this night.
    assert prints == [("A01", 1, "stereo")]


def test_a_stored_stereo_recording_gone_since_is_left_out_of_the_first_print(tmp_path):
    folder = short_calls_folder(tmp_path / "recordings", ["A01-E-refund", "A01-E-billing"])
    calls, _ = read_manifest(folder)
    gone = next(c for c in calls if c.call_id == "A01-E-billing")
    Path(gone.path).unlink()  # deleted from the share since it was stored
    config = default_config()
    got = mono.first_print_embeddings(calls, [], load_vad_model(), mono.load_encoder(), config)
    assert list(got) == ["A01"] and len(got["A01"]) == 1
    assert got["A01"][0] is not None and got["A01"][0].shape == (256,)
