"""Coaching outcomes (pipeline/coaching/): windows, difference in differences and verdicts on
crafted call figures where coaching helped, did nothing and made things worse."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline.catalogue import DEFAULT_PATH, load_catalogue
from pipeline.coaching.options import CoachingOptions
from pipeline.coaching.outcomes import directions, outcome_rows
from pipeline.coaching.stats import (
    IMPROVED,
    NO_CLEAR_CHANGE,
    TOO_FEW,
    WORSE,
    Estimate,
    Samples,
    estimate,
    verdict,
)
from pipeline.coaching.windows import event_windows

CATALOGUE = load_catalogue(DEFAULT_PATH)
EVENT = date(2026, 10, 1)
OPTIONS = CoachingOptions(figures=("agitation", "agent_politeness_per_min"), resamples=1000)


def crafted_calls(
    move_sd: float, per_day: int = 4, season: float = 0.6, seed: int = 0, coached: str = "C1"
) -> pd.DataFrame:
    """Agent C1 (coached on EVENT) and four uncoached agents, 30 days either side of it, plus
    early-career calls. Every agent's agitation rises by `season` after EVENT (a busy month);
    C1's also moves by `move_sd` standard deviations (negative: calmer, i.e. improved).
    Politeness per minute moves the opposite way by the same amount (more polite = better)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, agent in enumerate([coached, "U1", "U2", "U3", "U4"]):
        level = 0.3 * n
        for offset in [*range(-30, 0), *range(1, 31)]:
            day = EVENT + timedelta(days=offset)
            after = offset > 0
            shift = season * after + (move_sd * after if agent == coached else 0.0)
            for k in range(per_day):
                ag = level + shift + rng.standard_normal()
                rows.append(
                    (
                        agent,
                        datetime.combine(day, datetime.min.time()) + timedelta(hours=9 + k),
                        None,
                        ag,
                        10.0 - ag + rng.standard_normal() * 0.1,
                    )
                )
        for k in range(5):  # early-career calls, a year before
            rows.append((agent, datetime(2025, 9, 1 + k, 10), "early", level - 1.0, 12.0))
    return pd.DataFrame(
        rows,
        columns=["agent_id", "recorded_at", "cohort", "agitation", "agent_politeness_per_min"],
    )  # fmt: skip


def verdicts(calls: pd.DataFrame, events=(("C1", EVENT),), options=OPTIONS) -> dict:
    out = outcome_rows(calls, list(events), options, CATALOGUE)
    return {(r.agent_id, r.event_date, r.figure): r for r in out.itertuples()}


@pytest.mark.parametrize(
    ("move_sd", "expected"), [(-1.0, IMPROVED), (0.0, NO_CLEAR_CHANGE), (1.0, WORSE)]
)
def test_helped_did_nothing_and_made_worse_get_their_verdicts(move_sd, expected) -> None:
    rows = verdicts(crafted_calls(move_sd))
    for figure in OPTIONS.figures:
        r = rows[("C1", EVENT, figure)]
        assert r.verdict == expected, (figure, r)
        assert r.n_before == 120 and r.n_after == 120 and r.comparison_agents == 4
    ag = rows[("C1", EVENT, "agitation")]
    # the season (+0.6 for everyone) is not credited to coaching: did is near the true move
    assert ag.change == pytest.approx(0.6 + move_sd, abs=0.35)
    assert ag.did == pytest.approx(move_sd, abs=0.35)
    assert ag.ci_low < ag.did < ag.ci_high
    assert ag.effect_size == pytest.approx(ag.did / 1.0, abs=0.4)  # calls' SD is about 1
    assert ag.early_mean == pytest.approx(-1.0) and ag.n_early == 5


def test_without_the_comparison_a_seasonal_rise_would_read_as_worse() -> None:
    calls = crafted_calls(0.0)
    alone = verdicts(calls[calls["agent_id"] == "C1"])[("C1", EVENT, "agitation")]
    assert alone.comparison_agents == 0 and alone.comparison_change is None
    assert alone.verdict == WORSE  # what a plain before/after would claim
    assert verdicts(calls)[("C1", EVENT, "agitation")].verdict == NO_CLEAR_CHANGE


def test_too_few_calls_after_the_event_gives_no_verdict_yet() -> None:
    calls = crafted_calls(-1.0, per_day=1)  # 30 calls a window, under min_calls
    r = verdicts(calls)[("C1", EVENT, "agitation")]
    assert r.n_after == 30 < OPTIONS.min_calls
    assert r.verdict == TOO_FEW and r.did is not None  # provisional figures are still shown


def test_after_window_ends_at_the_next_event_and_coached_agents_are_not_the_comparison() -> None:
    second = EVENT + timedelta(days=11)
    w = event_windows([("C1", EVENT), ("C1", second), ("U1", EVENT + timedelta(days=40))], 30)
    first = next(x for x in w if x.agent_id == "C1" and x.event_date == EVENT)
    assert (first.before_first, first.before_last) == (EVENT - timedelta(30), EVENT - timedelta(1))
    assert (first.after_first, first.after_last) == (EVENT + timedelta(1), second - timedelta(1))
    events = [("C1", EVENT), ("C1", second), ("U2", EVENT + timedelta(days=3))]
    rows = verdicts(crafted_calls(-1.0), events=events)
    r = rows[("C1", EVENT, "agitation")]
    assert r.n_after == 10 * 4 and r.after_last == second - timedelta(1)
    assert r.comparison_agents == 3  # U2 was coached inside C1's windows


def test_direction_comes_from_the_metric_catalogue() -> None:
    assert directions(["agitation", "agent_politeness_per_min"], CATALOGUE) == {
        "agitation": 1,
        "agent_politeness_per_min": -1,
    }
    with pytest.raises(ValueError, match="no direction"):
        directions(["agent_loudness_dbfs"], CATALOGUE)
    # the transcript audit has a direction, but a new recording chain moves it, not coaching
    with pytest.raises(ValueError, match="recording property"):
        directions(["agent_asr_coverage"], CATALOGUE)
    est = Estimate(change=-1, comparison_change=0, did=-1, low=-1.5, high=-0.5, effect_size=-1)
    assert verdict(est, 1, 100, 100, 90) == IMPROVED
    assert verdict(est, -1, 100, 100, 90) == WORSE


def test_interval_resamples_calls_and_covers_the_truth() -> None:
    """The interval's width follows the number of calls: four times the calls, about half the
    width (a mean over calls), and the same data gives the same interval."""
    rng = np.random.default_rng(1)
    small = Samples(rng.standard_normal(50), rng.standard_normal(50))
    large = Samples(rng.standard_normal(200), rng.standard_normal(200))
    a = estimate(small, None, 0.95, 2000, np.random.default_rng(5))
    b = estimate(large, None, 0.95, 2000, np.random.default_rng(5))
    ratio = (a.high - a.low) / (b.high - b.low)
    assert 1.6 < ratio < 2.5
    assert a == estimate(small, None, 0.95, 2000, np.random.default_rng(5))
