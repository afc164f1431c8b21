"""Cohorts, baselines, agitation and drift on small frames with known answers."""

import numpy as np
import pandas as pd
import pytest

from pipeline import derive
from pipeline.config import default_config

CONFIG = default_config()


def _calls(rows):
    return pd.DataFrame(rows, columns=["call_id", "agent_id", "recorded_at", "agent_hired_at"])


def test_cohorts_by_hire_date():
    calls = _calls(
        [
            ("a1", "A", "2024-01-20", "2024-01-08"),
            ("a2", "A", "2024-04-07", "2024-01-08"),  # day 12, day 90
            ("a3", "A", "2024-06-01", "2024-01-08"),  # neither
            ("a4", "A", "2026-10-25", "2024-01-08"),
            ("a5", "A", "2026-11-20", "2024-01-08"),
            ("a6", "A", "2026-10-20", "2024-01-08"),  # 31 days before the latest call
        ]
    )
    out = derive.assign_cohorts(calls, CONFIG.cohorts).set_index("call_id")
    assert out.loc["a1", "tenure_days"] == 12 and out.loc["a2", "tenure_days"] == 90
    assert out["cohort"].fillna("-").to_dict() == {
        "a1": "early",
        "a2": "early",
        "a3": "-",
        "a6": "-",
        "a4": "current",
        "a5": "current",
    }


def test_cohorts_without_hire_date_take_earliest_and_latest_k():
    calls = _calls([(f"b{i}", "B", f"2025-0{i}-01", None) for i in range(1, 8)])
    out = derive.assign_cohorts(calls, CONFIG.cohorts).set_index("call_id")["cohort"]
    assert list(out[out == "early"].index) == ["b1", "b2", "b3"]
    assert list(out[out == "current"].index) == ["b5", "b6", "b7"]
    assert pd.isna(out["b4"])


def _utts(agent, cohort, pitch, loud, rate, call="x", n=4):
    return [
        {
            "agent_id": agent,
            "cohort": cohort,
            "call_id": f"{call}",
            "utterance_id": i,
            "start_s": i * 2.0,
            "end_s": i * 2.0 + 1.5,
            "pitch_median_hz": pitch * (1 + 0.01 * i),
            "pitch_range_st": 4.0,
            "loudness_dbfs": loud,
            "speech_rate_cpm": rate,
        }
        for i in range(n)
    ]


def test_agitation_is_relative_to_the_agents_own_early_baseline():
    # Agent L speaks low and quiet, agent H high and loud; each one's current calls are
    # 3 semitones higher, 6 dB louder and 30% faster than their own early calls.
    rows = (
        _utts("L", "early", 110, -30, 200, "l1")
        + _utts("L", "current", 110 * 2**0.25, -24, 260, "l2")
        + _utts("H", "early", 240, -20, 200, "h1")
        + _utts("H", "current", 240 * 2**0.25, -14, 260, "h2")
    )
    utts = pd.DataFrame(rows)
    base = derive.agent_baselines(utts, CONFIG.baseline)
    ua = utts.merge(
        derive.utterance_agitation(utts, base, CONFIG.agitation), on=["call_id", "utterance_id"]
    )
    calls = derive.call_agitation(ua, CONFIG.agitation).set_index("call_id")["agitation"]
    assert calls["l1"] == pytest.approx(0.0, abs=0.3) and calls["h1"] == pytest.approx(0.0, abs=0.3)
    assert calls["l2"] > 1.5 and calls["h2"] > 1.5
    assert calls["l2"] == pytest.approx(calls["h2"], abs=0.2)  # same drift, same score
    assert ua.loc[ua.call_id == "l2", "pitch_vs_baseline_st"].mean() == pytest.approx(3.0, abs=0.2)


def test_drift_means_deltas_and_effect_size():
    m = pd.DataFrame(
        {
            "agent_id": ["A"] * 4,
            "cohort": ["early", "early", "current", "current"],
            "rate": [200.0, 210.0, 260.0, 270.0],
        }
    )
    d = derive.agent_drift(m, ["rate"]).iloc[0]
    assert (d.early_mean, d.current_mean, d.delta, d.n_early, d.n_current) == (
        205.0,
        265.0,
        60.0,
        2,
        2,
    )
    assert d.effect_size == pytest.approx(60 / np.sqrt(50))
