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


# --- hostile manifests (issue 7): refused as a whole only when nothing in them can be trusted --

HEAD = "path,call_id,agent_id,recorded_at"


def test_bom_and_crlf_are_accepted(tmp_path):
    folder = _folder(tmp_path, "")
    (folder / "manifest.csv").write_bytes(
        ("\ufeff" + HEAD + ",channels\r\na.wav,c1,A1,2024-02-01,Agent_Left\r\n").encode("utf-8")
    )
    calls, failures = read_manifest(folder)
    assert failures == [] and calls[0].call_id == "c1" and calls[0].channels == "agent_left"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (f"{HEAD}\na.wav,客服一,A1,2024-02-01\n".encode("gbk"), "not UTF-8 (line 2, byte 0xbf)"),
        (b"", "empty file, expected a header row"),
        (b"\n\n", "empty file"),
        (f"{HEAD},path\na.wav,c1,A1,2024-02-01,b.wav\n".encode(), "named twice: path"),
        (b"path,call_id,agent,recorded_at\n", "missing required column(s): agent_id"),
    ],
)
def test_a_manifest_unusable_as_a_whole_is_one_clear_error(tmp_path, raw, message):
    folder = _folder(tmp_path, "")
    (folder / "manifest.csv").write_bytes(raw)
    with pytest.raises(ManifestError) as e:
        read_manifest(folder)
    assert message in str(e.value)


def test_a_header_alone_is_an_empty_batch(tmp_path):
    assert read_manifest(_folder(tmp_path, HEAD + "\n")) == ([], [])


def test_failures_point_at_the_right_line_despite_blank_lines_and_multiline_fields(tmp_path):
    folder = _folder(
        tmp_path,
        f'{HEAD},note\n\na.wav,c1,A1,2024-02-01,"two\nlines"\n\nmissing.wav,c2,A1,2024-02-01,\n',
    )
    calls, failures = read_manifest(folder)
    assert [c.call_id for c in calls] == ["c1"] and calls[0].attributes == {"note": "two\nlines"}
    assert [(f.row, f.call_id) for f in failures] == [(6, "c2")]


def test_paths_that_leave_the_folder_or_are_not_files(tmp_path):
    outside = tmp_path / "outside.wav"
    _wav(outside)
    folder = tmp_path / "rec"
    folder.mkdir()
    _folder(folder, "")
    (folder / "adir.wav").mkdir()
    (folder / "link_out.wav").symlink_to(outside)
    (folder / "link_in.wav").symlink_to(folder / "a.wav")
    (folder / "loop.wav").symlink_to(folder / "loop.wav")
    rows = [
        "../outside.wav",
        str(outside),
        str(folder / "a.wav"),  # absolute, even pointing inside: paths are relative
        "link_out.wav",
        "link_in.wav",
        "adir.wav",
        "sub/../../outside.wav",
        "loop.wav",
        "x" * 5000 + ".wav",
    ]
    body = HEAD + "\n" + "".join(f"{p},c{i},A1,2024-02-01\n" for i, p in enumerate(rows))
    (folder / "manifest.csv").write_text(body, encoding="utf-8")
    calls, failures = read_manifest(folder)
    assert [c.rel_path for c in calls] == ["link_in.wav"]
    reasons = {f.path: f.reason for f in failures}
    assert "escapes the recordings folder" in reasons["../outside.wav"]
    assert "is absolute" in reasons[str(outside)] and "is absolute" in reasons[rows[2]]
    assert "outside the recordings folder through a link" in reasons["link_out.wav"]
    assert "is a directory" in reasons["adir.wav"]
    assert "escapes" in reasons["sub/../../outside.wav"]
    assert "cannot be resolved" in reasons["loop.wav"] or "not found" in reasons["loop.wav"]
    assert "cannot be resolved" in reasons[rows[-1]]


def test_a_duplicate_call_id_never_takes_the_first_rows_place(tmp_path):
    folder = _folder(
        tmp_path,
        f"{HEAD}\n"
        "a.wav,ok,A1,2024-02-01\n"
        "a.wav,ok,A2,2024-03-01\n"  # duplicate of a good row
        "a.wav,bad,A1,someday\n"
        "a.wav,bad,A1,2024-02-01\n",  # duplicate of a bad row: the id stays the first row's
    )
    calls, failures = read_manifest(folder)
    assert [(c.call_id, c.agent_id) for c in calls] == [("ok", "A1")]
    by_line = {f.row: f for f in failures}
    assert "duplicate call_id 'ok' (first on line 2)" in by_line[3].reason
    assert "duplicate call_id 'bad' (first on line 4)" in by_line[5].reason
    # only the row that owns the id keeps a `calls` row
    assert by_line[3].known is None and by_line[5].known is None and by_line[4].known is not None


def test_a_rejected_row_keeps_what_it_still_says_about_its_call(tmp_path):
    folder = _folder(
        tmp_path,
        f"{HEAD},agent_hired_at,channels,topic,queue\n"
        "missing.wav,c1,A1,2024-02-01T10:00:00,2023-13-01,agent_right,refund,售后\n"
        "a.wav,c2,,not a date,,,,\n",
    )
    _, failures = read_manifest(folder)
    k1, k2 = failures[0].known, failures[1].known
    assert (k1.agent_id, k1.recorded_at, k1.agent_hired_at) == (
        "A1",
        datetime(2024, 2, 1, 10),
        None,
    )
    assert (k1.channels, k1.topic, k1.attributes) == ("agent_right", "refund", {"queue": "售后"})
    assert k1.folder == str(folder.resolve())
    assert (k2.agent_id, k2.recorded_at) == (None, None)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_dates_at_the_edge_of_the_calendar_are_a_row_failure(tmp_path, value):
    folder = _folder(tmp_path, f"{HEAD}\na.wav,c1,A1,{value}\n")
    calls, failures = read_manifest(folder)
    assert calls == [] and "recorded_at" in failures[0].reason
