"""Clips for a calibration session: a short lead-in kept before each utterance, and stretches
of a call that must not be heard (masked PII) silenced in every clip that covers them."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from pipeline import store
from pipeline.audio import SAMPLE_RATE
from pipeline.report import build_report
from pipeline.report.clips import CLIP_PAD_S, ClipCutter, silence
from tests.test_report import AGENT, CONFIG, build_db, clips

# e1~c1's second early answer runs 4.0-7.5 s of call e1; mute 5.0-6.0 s of it
MUTE = (5.0, 6.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def test_silence_zeroes_exactly_the_range_in_call_time() -> None:
    x = np.ones(10 * SAMPLE_RATE, dtype=np.float32)  # a clip starting 2 s into the call
    done = silence(x, 2.0, [(3.0, 4.5), (20.0, 21.0), (0.0, 2.5)], SAMPLE_RATE)
    assert done == ((2.0, 2.5), (3.0, 4.5))  # clipped to the clip; the range after it ignored
    zero = np.flatnonzero(x == 0)
    assert x[: int(0.5 * SAMPLE_RATE)].max() == 0
    assert x[int(1.0 * SAMPLE_RATE) : int(2.5 * SAMPLE_RATE)].max() == 0
    assert len(zero) == int(0.5 * SAMPLE_RATE) + int(1.5 * SAMPLE_RATE)
    assert x[int(2.5 * SAMPLE_RATE) :].min() == 1


def test_clip_cutter_silences_a_crafted_mute_range(tmp_path: Path) -> None:
    db = build_db(tmp_path)
    con = store.connect(db, read_only=True)
    cutter = ClipCutter(
        partial(store.reads.call_recording, con), lambda c: [MUTE] if c == "e1" else []
    )
    clip = cutter.clip("e1", 4.0, 7.5)
    con.close()
    assert clip.src and clip.muted == (MUTE,)
    assert clip.clip_start_s == pytest.approx(4.0 - CLIP_PAD_S)
    assert clip.lead_s == pytest.approx(CLIP_PAD_S)


def test_report_clips_stay_silent_where_muted_and_keep_their_lead_in(tmp_path: Path) -> None:
    db = build_db(tmp_path)
    con = store.connect(db, read_only=True)
    try:
        muted = build_report(con, AGENT, CONFIG, mute_spans={"e1": [MUTE]})
        plain = build_report(con, AGENT, CONFIG)
    finally:
        con.close()
    _, loud, sr = clips(plain)[2]  # page order: e1 #1, c1 #1, e1 #3, ...
    _, quiet, sr2 = clips(muted)[2]
    assert sr == sr2
    start = 4.0 - CLIP_PAD_S  # the clip's first sample in call time: the lead-in is there

    def part(x: np.ndarray, a: float, b: float) -> np.ndarray:
        # 0.1 s margins: a lossy codec smears a hard edge by a few milliseconds
        return x[int((a - start + 0.1) * sr) : int((b - start - 0.1) * sr)]

    assert rms(part(loud, *MUTE)) > 0.1  # the agent's tone is there without muting
    assert rms(part(quiet, *MUTE)) < 0.01  # and gone with it
    assert rms(part(quiet, 4.0, MUTE[0])) > 0.1  # the rest of the answer still plays
    assert rms(part(quiet, MUTE[1], 7.5)) > 0.1
    assert "已静音 muted (PII): 5.0–6.0 s" in muted
    assert 'data-lead="0.300"' in muted and 'data-clip-start="3.700"' in muted
