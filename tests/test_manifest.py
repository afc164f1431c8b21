"""Manifest parsing: good rows become CallInputs, each kind of bad row a Failure with a reason."""

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.manifest import ManifestError, read_manifest


def _wav(path: Path) -> None:
    sf.write(path, np.zeros((8000, 2), dtype=np.float32), 8000)


def _folder(tmp_path: Path, body: str) -> Path:
    _wav(tmp_path / "a.wav")
    (tmp_path / "sub").mkdir()
    _wav(tmp_path / "sub" / "b.wav")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "manifest.csv").write_text(body, encoding="utf-8")
    return tmp_path


def test_good_rows_with_optional_and_extra_columns(tmp_path):
    folder = _folder(
        tmp_path,
        (
            "path,call_id,agent_id,recorded_at,agent_hired_at,channels,topic,queue\n"
            "a.wav,c1,A1,2024-02-01T10:15:00,2024-01-08,agent_left,refund,售后\n"
            "sub/b.wav,c2,A1,2024-02-03,,,,\n"
        ),
    )
    calls, failures = read_manifest(folder)
    assert failures == []
    assert [c.call_id for c in calls] == ["c1", "c2"]
    c1, c2 = calls
    assert c1.recorded_at == datetime(2024, 2, 1, 10, 15)
    assert c1.agent_hired_at == date(2024, 1, 8)
    assert (c1.channels, c1.topic, c1.attributes) == ("agent_left", "refund", {"queue": "售后"})
    assert Path(c1.path) == folder.resolve() / "a.wav" and c1.folder == str(folder.resolve())
    assert (c2.agent_hired_at, c2.channels, c2.topic) == (None, None, None)


def test_each_bad_row_is_reported_and_the_rest_kept(tmp_path):
    folder = _folder(
        tmp_path,
        (
            "path,call_id,agent_id,recorded_at,channels\n"
            "a.wav,ok1,A1,2024-02-01,\n"
            "missing.wav,m1,A1,2024-02-01,\n"
            "a.wav,d1,A1,yesterday,\n"
            "../a.wav,e1,A1,2024-02-01,\n"
            "a.wav,ok1,A1,2024-02-02,\n"
            "a.wav,l1,A1,2024-02-01,left\n"
            "notes.txt,t1,A1,2024-02-01,\n"
            "a.wav,,A1,2024-02-01,\n"
        ),
    )
    calls, failures = read_manifest(folder)
    assert [c.call_id for c in calls] == ["ok1"]
    reasons = {f.row: f.reason for f in failures}
    assert "audio file not found" in reasons[3]
    assert "recorded_at" in reasons[4] and "ISO 8601" in reasons[4]
    assert "escapes the recordings folder" in reasons[5]
    assert "duplicate call_id" in reasons[6]
    assert "channels must be one of" in reasons[7]
    assert "unsupported audio type" in reasons[8]
    assert "empty required field 'call_id'" in reasons[9]
    assert all(f.stage == "manifest" for f in failures)


def test_timezone_is_converted_and_bom_accepted(tmp_path):
    folder = _folder(
        tmp_path, "\ufeffpath,call_id,agent_id,recorded_at\na.wav,c1,A1,2024-02-01T10:00:00Z\n"
    )
    calls, failures = read_manifest(folder)
    assert failures == [] and calls[0].recorded_at.tzinfo is None


def test_missing_manifest_or_required_column_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="no manifest.csv"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("path,call_id\na.wav,c1\n")
    with pytest.raises(ManifestError, match="agent_id, recorded_at"):
        read_manifest(tmp_path)
