"""PII on the real run: sample call A03-C-delivery_delay has the customer read out a mobile
number and the agent read it back (scripts/sample_dialogues.toml). On the session's real flow
run (real Whisper, real DuckDB file, the committed audio) the number is masked in the stored
text of both turns, `pii_spans` times it where it is spoken, and a report clip cut by the
report's own clip code is silent there and audible just after it."""

from __future__ import annotations

import base64
import io
import re
from functools import partial

import numpy as np
import pytest
import soundfile as sf

from pipeline.config import default_config
from pipeline.report.clips import ClipCutter
from pipeline.store import reads

pytestmark = pytest.mark.slow

CALL = "A03-C-delivery_delay"
NUMBER = "一三九零零一二三四五六"  # as the script spells it (customer: 一三九，零零一二，三四五六)
TOLERANCE_S = 0.5
# a digit in any script Whisper may use, and the separators it may put between digits
DIGIT = "0-9０-９零〇一二三四五六七八九幺两"
DIGIT_RUN = re.compile(rf"[{DIGIT}](?:[\s\-－—,，、.]*[{DIGIT}]){{2,}}")
SILENT_RMS = 1e-3  # muted: zeros before encoding (line noise alone is about 1.3e-3, -58 dBFS)
AUDIBLE_RMS = 1e-2  # speech: 18 dB and more above the line noise


def _spoken(text: str) -> str:
    return re.sub(r"[，。？！]", "", text)


def _number_turns(ground_truth: dict) -> dict[str, tuple[dict, float, float]]:
    """speaker -> (scripted turn holding the number, number start_s, number end_s).

    ground_truth.json times each turn, not each character: the number's time is its share of
    the turn's speech, laid over the turn's real start and end, each character one syllable
    and each mark inside the turn one syllable of pause (the TTS pauses there: about 0.2 s at
    each comma of 一三九，零零一二，三四五六 in the recording; counting no pause put the
    number's start 0.4 s after it is heard).
    """
    call = next(c for c in ground_truth["calls"] if c["call_id"] == CALL)
    out = {}
    for turn in call["turns"]:
        text = turn["text"].rstrip("，。？！")
        said = _spoken(text)
        if NUMBER not in said:
            continue
        i = said.index(NUMBER)
        first = _nth_spoken(text, i)
        last = _nth_spoken(text, i + len(NUMBER) - 1)
        per_unit = (turn["end_s"] - turn["start_s"]) / len(text)
        out[turn["speaker"]] = (
            turn,
            turn["start_s"] + first * per_unit,
            turn["start_s"] + (last + 1) * per_unit,
        )
    assert set(out) == {"customer", "agent"}, "the script reads the number out and back"
    return out


def _nth_spoken(text: str, n: int) -> int:
    """Index in `text` of its n-th spoken (non-punctuation) character."""
    return [i for i, ch in enumerate(text) if ch not in "，。？！"][n]


def _utterances(db_con, turn: dict) -> list[tuple]:
    """(utterance_id, start_s, end_s, text) of the turn's speaker that mostly lie in the turn."""
    rows = db_con.execute(
        "SELECT utterance_id, start_s, end_s, text FROM utterances "
        "WHERE call_id = ? AND speaker = ? ORDER BY start_s",
        [CALL, turn["speaker"]],
    ).fetchall()
    return [
        r
        for r in rows
        if min(r[2], turn["end_s"]) - max(r[1], turn["start_s"]) > 0.5 * (r[2] - r[1])
    ]


def test_the_read_out_phone_number_is_masked_timed_and_muted(db_con, ground_truth):
    tokens = {default_config().asr.redaction.token(k) for k in ("phone", "number")}
    spans = db_con.execute(
        "SELECT utterance_id, kind, start_s, end_s FROM pii_spans WHERE call_id = ? "
        "ORDER BY start_s",
        [CALL],
    ).fetchall()
    number = _number_turns(ground_truth)
    muted_reply = None
    for speaker, (turn, start, end) in number.items():
        utts = _utterances(db_con, turn)
        text = "".join(u[3] for u in utts)
        # (a) the stored text holds a mask token and none of the digits, in any script
        assert any(t in text for t in tokens), (speaker, text)
        assert not DIGIT_RUN.search(text), (speaker, text)
        # (b) a masked span of those utterances lies where the number is spoken (its stored
        # edges less the mute padding, which the report adds around what was said)
        ids = {u[0] for u in utts}
        pad = default_config().asr.redaction.mute_pad_s
        near = [
            s
            for s in spans
            if s[0] in ids
            and abs(s[2] + pad - start) <= TOLERANCE_S
            and abs(s[3] - pad - end) <= TOLERANCE_S
        ]
        assert near, (speaker, round(start, 3), round(end, 3), spans)
        if speaker == "agent":
            muted_reply = (utts[0], near[0])
    # nothing else in the call is masked
    assert len(spans) == len(number), spans

    # (c) the agent's read-back as the report cuts it (clips hold the agent's channel only):
    # silent over its masked span, audible just after it (记下了); the muted ranges read from
    # the database as build_report reads them by default
    (_, utt_start, utt_end, _), (_, _, mute_start, mute_end) = muted_reply
    mutes = reads.mute_spans(db_con)
    cutter = ClipCutter(partial(reads.call_recording, db_con), lambda c: mutes.get(c, ()))
    clip = cutter.clip(CALL, utt_start, utt_end)
    assert clip.src and (mute_start, mute_end) in clip.muted, clip.muted
    samples, sr = sf.read(io.BytesIO(base64.b64decode(clip.src.split(",", 1)[1])))

    def rms(a: float, b: float) -> float:
        part = samples[int((a - clip.clip_start_s) * sr) : int((b - clip.clip_start_s) * sr)]
        assert len(part) > 0.05 * sr, (a, b)
        return float(np.sqrt(np.mean(np.square(part))))

    # 0.1 s margins: a lossy codec smears a hard edge by a few milliseconds
    assert rms(mute_start + 0.1, mute_end - 0.1) < SILENT_RMS
    after = (mute_end + 0.1, min(mute_end + 0.3, utt_end))
    assert rms(*after) > AUDIBLE_RMS, after
