"""Masked PII stays silent in the report by default: the clips are muted over every stretch
stored in `pii_spans`, without the caller passing anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import store
from pipeline.report import build_report
from pipeline.report.clips import CLIP_PAD_S
from tests.test_report import AGENT, CONFIG, build_db, clips


def test_clips_are_silent_over_stored_pii_spans_by_default(tmp_path: Path) -> None:
    db = build_db(tmp_path)
    con = store.connect(db)
    before = build_report(con, AGENT, CONFIG)
    store.write_frame(
        con,
        "pii_spans",
        pd.DataFrame(
            [
                {
                    "call_id": "e1",
                    "utterance_id": 3,
                    "kind": "phone",
                    "start_char": 5,
                    "end_char": 16,
                    "start_s": 5.0,
                    "end_s": 6.0,
                }
            ]
        ),
    )
    after = build_report(con, AGENT, CONFIG)
    con.close()
    _, loud, sr = clips(before)[2]  # e1's answer at 4.0-7.5 s
    _, quiet, _ = clips(after)[2]
    start = 4.0 - CLIP_PAD_S

    def rms(x: np.ndarray, a: float, b: float) -> float:
        part = x[int((a - start + 0.1) * sr) : int((b - start - 0.1) * sr)]
        return float(np.sqrt(np.mean(np.square(part))))

    assert rms(loud, 5.0, 6.0) > 0.1
    assert rms(quiet, 5.0, 6.0) < 0.01  # the phone number is not heard
    assert rms(quiet, 6.0, 7.5) > 0.1  # the rest of the answer is
