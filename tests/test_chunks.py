"""The streamed, chunked run (issue 6): calls batched across a chunk transcribe exactly as they
do one at a time, a run killed after its first chunk resumes to every call stored exactly once,
and how many calls run at once changes no stored figure (real Whisper, real runs)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import duckdb
import pytest

from pipeline import mono, review
from pipeline.config import default_config
from pipeline.manifest import read_manifest
from pipeline.records import Utterance
from pipeline.vad import load_vad_model
from tests.cli_runs import differences, finish, start_run
from tests.folders import mix_to_mono, short_calls_folder

pytestmark = pytest.mark.slow

CALLS = ["A01-E-refund", "A02-C-billing", "A03-E-delivery_delay"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return short_calls_folder(tmp_path_factory.mktemp("chunks") / "calls", CALLS)


def test_calls_batched_together_transcribe_as_they_do_one_at_a_time(folder, asr_model):
    config = default_config()
    vad, encoder = load_vad_model(), mono.load_encoder()
    calls, _ = read_manifest(folder)
    prepared = [review.prepare_call(c, vad, encoder, config) for c in calls]
    together = review.transcribe_chunk(prepared, asr_model, config)
    assert set(together) == set(CALLS)
    for p in prepared:
        alone = review.transcribe_chunk([p], asr_model, config)[p.call.call_id]
        both = together[p.call.call_id]
        assert alone.utterances, p.call.call_id  # real speech, real text
        # Greedy decoding is deterministic: the same words at the same times, the same coverage
        # and PII spans. Whisper's scores differ only in float rounding (a batch of 1 and of 6
        # sum in a different order), about 1e-7.
        assert [_words(u) for u in both.utterances] == [_words(u) for u in alone.utterances]
        assert both.coverage == alone.coverage and both.pii == alone.pii
        for b, a in zip(both.utterances, alone.utterances, strict=True):
            assert b.avg_logprob == pytest.approx(a.avg_logprob, abs=1e-4)
            assert b.no_speech_prob == pytest.approx(a.no_speech_prob, abs=1e-4)


def _words(u: Utterance) -> tuple:
    return (u.call_id, u.utterance_id, u.speaker, u.start_s, u.end_s, u.text)


def test_concurrency_changes_no_stored_figure(folder, tmp_path):
    one = tmp_path / "one.duckdb"
    many = tmp_path / "many.duckdb"
    finish(start_run(folder, one, workers="1", chunk_calls="3"))
    finish(start_run(folder, many, workers="3", chunk_calls="3"))
    assert differences(one, many) == []  # every table and view, row by row


def test_a_run_killed_after_its_first_chunk_resumes_storing_every_call_once(folder, tmp_path):
    db = tmp_path / "killed.duckdb"
    proc = start_run(folder, db, ("--verbose",), chunk_calls="1", workers="1")
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:  # the flow logs progress after each stored chunk (--verbose)
        seen.append(line)
        if f"1 / {len(CALLS)} inputs" in line:
            os.killpg(proc.pid, signal.SIGKILL)  # no clean-up: the run and its Prefect server
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    out = finish(start_run(folder, db, chunk_calls="1", workers="1"))
    # The first chunk was committed before the kill: only the other calls are redone.
    assert f"{len(CALLS) - 1} calls processed, 1 already done, 0 not settled, 0 failed" in out
    con = duckdb.connect(str(db), read_only=True)
    try:
        per_call = con.execute("SELECT call_id, count(*) FROM calls GROUP BY call_id").fetchall()
        utt_dupes = con.execute(
            "SELECT count(*) - count(DISTINCT (call_id, utterance_id)) FROM utterances"
        ).fetchone()[0]
        statuses = sorted(r[0] for r in con.execute("SELECT status FROM runs").fetchall())
    finally:
        con.close()
    assert sorted(per_call) == sorted((c, 1) for c in CALLS)
    assert utt_dupes == 0
    assert statuses == ["interrupted", "ok"]


def test_a_forced_re_run_does_not_count_its_calls_into_the_voice_prints_twice(tmp_path):
    """A01's two stereo calls, then their first mono call, one chunk each: the print is built
    when the mono call's chunk needs it, from the two stereo calls stored by the chunks before.
    A forced re-run of all three (one chunk) must not add them to the print again."""
    stereo, mono_call = ["A01-E-refund", "A01-E-billing"], ["A01-C-refund"]
    folder = short_calls_folder(tmp_path / "calls", stereo + mono_call)
    mix_to_mono(folder, mono_call)
    db = tmp_path / "prints.duckdb"
    finish(start_run(folder, db, chunk_calls="1", workers="1"))
    first = _print_counts(db)
    assert first == {"A01": 2}
    out = finish(start_run(folder, db, ("--force",)))
    assert "3 calls processed" in out
    assert _print_counts(db) == first


def _print_counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT agent_id, n_calls FROM agent_voice_prints").fetchall())
    finally:
        con.close()
