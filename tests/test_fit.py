"""`callreview calibrate fit`: figures against evaluators' scores (rank correlation with an
interval over pairs) and rule thresholds against the calls evaluators found drifted, on crafted
scores with a planted threshold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from pipeline import store
from pipeline.calibration import import_file
from pipeline.config import Rule
from pipeline.fit.ranks import rank_fit, rank_fits
from pipeline.fit.thresholds import drifted_calls, fit_rules
from pipeline.rubric import load_rubric
from tests.test_calibration import HELD, RUBRIC, SCORES, exported, write_json
from tests.test_report import build_db

PLANTED = 300.0  # 字/分钟: evaluators find a call drifted above this speaking rate
RATE_RULE = Rule(name="speech_rate_high", label="语速过快", metric="rate", op=">", threshold=280)


def crafted_verdicts(rates: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Three evaluators, two aligned answer pairs per current call: each says drifted when the
    call's rate is over PLANTED, and each verdict is flipped one time in ten."""
    rows = []
    for n, rate in enumerate(rates):
        for pair in range(2):
            for evaluator in ("a", "b", "c"):
                says = (rate > PLANTED) != (rng.random() < 0.1)
                rows.append((f"c{n}", f"e{n}~c{n}", pair, pair, evaluator, int(says)))
    return pd.DataFrame(
        rows,
        columns=[
            "current_call_id",
            "pair_id",
            "early_utterance_id",
            "current_utterance_id",
            "evaluator",
            "score",
        ],
    )


def test_fit_recovers_a_planted_threshold_within_ten_percent() -> None:
    rng = np.random.default_rng(3)
    rates = rng.uniform(180, 380, 160)
    labels = drifted_calls(crafted_verdicts(rates, rng))
    assert labels.sum() == pytest.approx((rates > PLANTED).sum(), abs=8)  # majorities hold
    metrics = pd.DataFrame({"call_id": [f"c{n}" for n in range(len(rates))], "rate": rates})
    rules = (RATE_RULE, Rule(name="unused", label="x", metric="absent", op=">", threshold=1))
    (fit,) = fit_rules(labels, metrics, rules)
    assert fit.suggested == pytest.approx(PLANTED, rel=0.10)
    assert fit.agreement_suggested > 0.85 and fit.kappa_suggested > 0.7  # cross-validated
    assert fit.agreement_in_force < fit.agreement_suggested  # 280 flags too many
    assert (fit.n_calls, fit.in_force) == (160, 280)


def test_a_call_is_drifted_when_most_evaluators_say_so_on_most_of_its_pairs() -> None:
    rows = [  # call x: pair 0 yes by 2 of 3, pair 1 yes by 1 of 3 -> 1 of 2 pairs: not drifted
        ("x", "p", 0, 0, "a", 1), ("x", "p", 0, 0, "b", 1), ("x", "p", 0, 0, "c", 0),
        ("x", "p", 1, 1, "a", 1), ("x", "p", 1, 1, "b", 0), ("x", "p", 1, 1, "c", 0),
        ("y", "q", 0, 0, "a", 1), ("y", "q", 0, 0, "b", 1),
    ]  # fmt: skip
    cols = ["current_call_id", "pair_id", "early_utterance_id", "current_utterance_id"]
    labels = drifted_calls(pd.DataFrame(rows, columns=[*cols, "evaluator", "score"]))
    assert labels.to_dict() == {"x": False, "y": True}


def test_rank_correlation_and_its_interval_over_pairs() -> None:
    rng = np.random.default_rng(4)
    n = 60
    agitation = rng.normal(0, 1, n)
    rows = pd.DataFrame(
        {
            "pair_id": [f"p{k // 2}" for k in range(n)],  # early and current answer of a pair
            "early_utterance_id": 1,
            "current_utterance_id": 1,
            "item": "patience",
            "mean_score": np.clip(np.round(3 - agitation + rng.normal(0, 0.7, n)), 1, 5),
            "agitation": agitation,
        }
    )
    rho, low, high, answers, pairs = rank_fit(
        rows, "agitation", 0.95, 500, np.random.default_rng(0)
    )
    assert rho == pytest.approx(spearmanr(rows["mean_score"], agitation).statistic)
    assert (answers, pairs) == (60, 30)
    assert low < rho < high < 0  # patience falls as agitation rises
    fits = rank_fits(rows, load_rubric(), resamples=200)
    mine = next(f for f in fits if (f.item, f.figure) == ("patience", "agitation"))
    assert mine.expected == -1 and mine.rho == pytest.approx(rho)


def test_cli_fit_prints_suggestions_beside_the_thresholds_in_force(tmp_path: Path) -> None:
    db = build_db(tmp_path)
    con = store.connect(db)
    try:
        for e in SCORES:
            assert import_file(con, write_json(tmp_path, exported(e)), RUBRIC, HELD).status == (
                "imported"
            )
    finally:
        con.close()
    cli = [sys.executable, "-m", "callreview.cli", "calibrate"]
    out = subprocess.run(
        [*cli, "fit", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Figures against evaluators' scores" in out.stdout
    assert "speech_rate_high" in out.stdout and "> 280" in out.stdout  # the threshold in force
    assert "too few labelled calls" in out.stdout  # 2 current calls: no suggestion
