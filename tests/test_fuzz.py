"""Fuzzing (issue 7, part 5): manifest parsing, text normalisation, the text metrics and
redaction hold on arbitrary input. What "hold" means per function is in each test's name.

Redaction has its own property tests in tests/test_redact.py (arbitrary Unicode, idempotence,
every rendering of a number, utterance joining); only what they leave out is here.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.clarity import call_clarity, sentences
from pipeline.config import default_config
from pipeline.manifest import ManifestError, read_manifest
from pipeline.records import Utterance
from pipeline.redact import RedactOptions, redact
from pipeline.text import count_phrases, n_chars, normalise, numerals_to_digits, strip_punct
from pipeline.tone import phrase_counts

CONFIG = default_config()
FAST = settings(max_examples=150, deadline=None, database=None)
HEADER = ["path", "call_id", "agent_id", "recorded_at", "agent_hired_at", "channels", "topic"]


# --- manifest parsing ------------------------------------------------------------------------


def _recordings() -> Path:
    """One folder for every example: two real files, a directory, a link out."""
    root = Path(tempfile.mkdtemp(prefix="fuzz-manifest-"))
    folder = root / "rec"
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros((800, 2), np.float32), 8000)
    (folder / "sub").mkdir()
    sf.write(folder / "sub" / "b.flac", np.zeros(800, np.float32), 8000)
    (folder / "out.wav").symlink_to(root / "elsewhere.wav")
    return folder


FOLDER = _recordings()
PATHS = st.sampled_from(
    ["a.wav", "sub/b.flac", "sub", "../a.wav", "/etc/passwd", "out.wav", "missing.wav", "a.WAV"]
)
DATES = st.one_of(
    st.sampled_from(["2024-02-01", "2024-02-01T10:00:00+08:00", "2024-02-30", "Z", "", " "]),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(max_size=30),
)
FIELD = st.one_of(st.text(max_size=40), st.sampled_from(["", "mono", "agent_left", "'", '"']))


def _check(calls, failures, n_rows: int | None = None) -> None:
    ids = [c.call_id for c in calls]
    assert len(ids) == len(set(ids))  # call ids unique among the calls to process
    for c in calls:
        assert Path(c.path).is_relative_to(FOLDER.resolve()) and Path(c.path).is_file()
    for f in failures:
        assert f.stage == "manifest" and f.reason and f.row and f.row >= 2
    if n_rows is not None:
        assert len(calls) + len(failures) == n_rows  # every row is accounted for


def _write(raw: bytes) -> None:
    (FOLDER / "manifest.csv").write_bytes(raw)


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_calls_failures_or_a_manifest_error(raw):
    _write(raw)
    try:
        calls, failures = read_manifest(FOLDER)
    except ManifestError as e:
        assert str(e)
        return
    _check(calls, failures)


@FAST
@given(st.lists(st.tuples(PATHS, FIELD, FIELD, DATES, DATES, FIELD, FIELD), max_size=8))
def test_arbitrary_rows_each_give_a_call_or_a_failure_with_its_line(rows):
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    _write(("\ufeff" + out.getvalue()).encode("utf-8"))
    try:
        calls, failures = read_manifest(FOLDER)
    except ManifestError as e:  # only for a NUL byte in a field, which csv refuses outright
        assert "\0" in out.getvalue() and "readable CSV" in str(e)
        return
    # csv skips a row whose every field is empty; every other row is a call or a failure
    _check(calls, failures, sum(any(str(v) for v in r) for r in rows))


@FAST
@given(st.lists(st.sampled_from(["c1", "c2", "c1 ", " c2", "C1"]), min_size=1, max_size=6))
def test_a_call_id_is_processed_at_most_once(ids):
    body = "path,call_id,agent_id,recorded_at\n" + "".join(f"a.wav,{i},A,2024-02-01\n" for i in ids)
    _write(body.encode())
    calls, failures = read_manifest(FOLDER)
    _check(calls, failures, len(ids))
    assert sorted(c.call_id for c in calls) == sorted({i.strip() for i in ids})


# --- text normalisation ----------------------------------------------------------------------

ZH = st.text(
    alphabet=st.one_of(
        st.sampled_from("零〇一二三四五六七八九十百千万幺两，。？！、 ：—…“”您好退款订单尾号"),
        st.characters(),
    ),
    max_size=60,
)


@FAST
@given(ZH)
def test_text_functions_never_crash_and_stay_in_bounds(text):
    assert isinstance(normalise(text), str)
    stripped = strip_punct(text)
    assert strip_punct(stripped) == stripped  # idempotent
    assert 0 <= n_chars(text) <= len(text)
    assert n_chars(text) == n_chars(stripped)
    digits = numerals_to_digits(text)
    assert numerals_to_digits(digits) == digits  # idempotent: no numeral survives
    assert not set(digits) & set("零〇一二三四五六七八九十百千万幺两")


@FAST
@given(ZH)
def test_normalise_is_idempotent(text):
    once = normalise(text)
    assert normalise(once) == once


@FAST
@given(ZH, st.lists(st.text(min_size=0, max_size=4), max_size=5))
def test_count_phrases_counts_at_most_one_hit_per_character(text, phrases):
    count = count_phrases(text, tuple(phrases))
    assert 0 <= count <= len(text)
    assert count_phrases(text, ()) == 0


# --- text metrics ----------------------------------------------------------------------------

UTTERANCES = st.lists(st.tuples(st.sampled_from(["agent", "customer"]), ZH), max_size=8)


@FAST
@given(UTTERANCES)
def test_clarity_figures_are_well_formed_on_any_transcript(rows):
    utts = [
        Utterance("c", i, speaker, float(i), i + 0.5, text)
        for i, (speaker, text) in enumerate(rows)
    ]
    c = call_clarity(utts, CONFIG.clarity)
    n_agent = sum(1 for s, _ in rows if s == "agent")
    assert 0 <= c.repeat_count <= max(0, n_agent - 1)
    assert c.long_sentence_share is None or 0 <= c.long_sentence_share <= 1
    assert c.sentence_chars_mean is None or c.sentence_chars_mean > 0
    assert c.chars_per_customer_turn is None or c.chars_per_customer_turn >= 0
    for _, text in rows:
        assert all(n_chars(s) > 0 for s in sentences(text))


@FAST
@given(ZH)
def test_phrase_counts_with_the_default_lexicon(text):
    counts = phrase_counts(text, CONFIG.lexicon)
    assert set(counts) == {pl.name for pl in CONFIG.lexicon.phrases}
    assert all(0 <= v <= len(text) for v in counts.values())
    doubled = phrase_counts(text + "\n" + text, CONFIG.lexicon)
    assert all(doubled[k] >= counts[k] for k in counts)


# --- redaction: what tests/test_redact.py does not cover ---------------------------------------


@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.text(max_size=80),
    st.builds(RedactOptions, min_digits=st.integers(1, 20), max_gap=st.integers(0, 6)),
)
def test_redaction_under_any_options_keeps_the_text_outside_its_spans(text, options):
    masked, spans = redact(text, options)
    pieces, at = [], 0
    for span in spans:
        assert at <= span.start_char < span.end_char <= len(text)
        pieces.append(text[at : span.start_char])
        at = span.end_char
    pieces.append(text[at:])
    # every unmasked stretch survives, in order: only the spans were replaced
    pos = 0
    for piece in pieces:
        found = masked.find(piece, pos)
        assert found >= 0, (text, masked, spans)
        pos = found + len(piece)
