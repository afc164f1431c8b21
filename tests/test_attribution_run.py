"""A real `callreview run` over a folder of stereo and mono calls: every processed call gets its
`speaker_attribution` row (how its speech was given to agent and customer), as the contract says.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import duckdb
import soundfile as sf

from tests.folders import short_calls_folder

CLI = [sys.executable, "-m", "callreview.cli"]
STEREO = ["A01-E-refund"]
MONO = ["A01-C-refund", "A01-E-billing"]  # recorded as one mix, as older systems store calls


def test_a_run_over_stereo_and_mono_calls_records_each_calls_attribution(tmp_path):
    folder = short_calls_folder(tmp_path / "recordings", STEREO + MONO, seconds=20.0)
    with open(folder / "manifest.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["call_id"] in MONO:
            data, sr = sf.read(folder / row["path"], dtype="float32", always_2d=True)
            sf.write(folder / row["path"], data.mean(axis=1), sr)  # the two sides on one track
            row["channels"] = "mono"
    with open(folder / "manifest.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    db = tmp_path / "mixed.duckdb"
    out = subprocess.run(
        [*CLI, "run", str(folder), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = dict(
            con.execute(
                "SELECT c.call_id, a.method FROM calls c LEFT JOIN speaker_attribution a "
                "USING (call_id) WHERE c.status = 'ok'"
            ).fetchall()
        )
        n_rows = con.execute("SELECT count(*) FROM speaker_attribution").fetchone()[0]
        channels = dict(con.execute("SELECT call_id, channels FROM calls").fetchall())
    finally:
        con.close()
    assert set(got) == set(STEREO + MONO) and n_rows == len(got)
    assert {got[c] for c in STEREO} == {"stereo"}
    mono_methods = {"voice_print", "recurrence", "phrases", "talk_share", "single_voice"}
    assert all(got[c] in mono_methods for c in MONO), got
    assert all(channels[c] == "mono" for c in MONO)
