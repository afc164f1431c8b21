"""Shared fixtures: the real converted Whisper model, and a real Prefect flow run over the
sample calls (plus deliberately bad inputs) into a real DuckDB file, done once per session."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import flows  # noqa: F401  (Prefect's environment defaults, before Prefect is imported)

# Tests write their recordings a moment before they run on them; a nightly run would leave such
# fresh files for the next night ([run] settle_s). Tests of that behaviour set it themselves
# (tests/test_nightly.py); subprocess runs inherit this.
os.environ.setdefault("CALLREVIEW_RUN__SETTLE_S", "0")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_audio"
EVAL = ROOT.parent / "shared" / "eval"


def require(available: bool, reason: str) -> None:
    """A test whose real dependency (browser, ../shared/eval, a package) is missing: skipped
    outside CI, saying why; failed under CI=true, where a silent skip would hide a check that
    never ran."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and a required dependency is missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def asr_model():
    """The CPU fp32 model every decode figure is compared against (pinned to the CPU: on a GPU
    machine `None` would pick CUDA and compare fp16 with CPU figures)."""
    from pipeline.asr import load_asr_model
    from pipeline.config import default_config

    return load_asr_model(None, "cpu", default_config().run.models_dir)


@pytest.fixture(scope="session")
def ground_truth() -> dict:
    return json.loads((SAMPLES / "ground_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def batch_folder(tmp_path_factory) -> Path:
    """sample_audio plus bad rows: a missing file, a bad date, a duplicate call id, a path
    escaping the folder, and a corrupt recording that only fails when decoded."""
    folder = tmp_path_factory.mktemp("batch")
    for f in SAMPLES.iterdir():
        if f.is_file():
            shutil.copy(f, folder / f.name)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    first = (SAMPLES / "manifest.csv").read_text(encoding="utf-8").splitlines()[1].split(",")
    extra = [
        "missing.wav,BAD-missing,A01,2026-11-01T10:00:00,,agent_left,refund,",
        f"{first[0]},BAD-date,A01,last tuesday,,agent_left,refund,",
        f"{first[0]},{first[1]},A01,2026-11-01T10:00:00,,agent_left,refund,",
        "../outside.wav,BAD-escape,A01,2026-11-01T10:00:00,,agent_left,refund,",
        "corrupt.wav,BAD-corrupt,A01,2026-11-01T10:00:00,,agent_left,refund,",
    ]
    with open(folder / "manifest.csv", "a", encoding="utf-8") as f:
        f.write("\n".join(extra) + "\n")
    return folder


@pytest.fixture(scope="session")
def flow_run(batch_folder, tmp_path_factory):
    """One real `review_calls` flow run (Prefect test harness) into a real DuckDB file."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.review import review_calls

    db = tmp_path_factory.mktemp("db") / "review.duckdb"
    with prefect_test_harness():
        summary = review_calls(folder=str(batch_folder), db=str(db))
        again = review_calls(folder=str(batch_folder), db=str(db))  # resume: nothing to redo
    return summary, again, db


@pytest.fixture()
def db_con(flow_run):
    from pipeline.store import connect

    con = connect(flow_run[2], read_only=True)
    yield con
    con.close()
