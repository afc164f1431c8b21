"""Which callreview figures agree with the evaluators' scores: per rubric item and figure,
Spearman's rank correlation (scipy) of the group's mean score with the figure over every scored
answer of every session, and a percentile bootstrap interval that resamples aligned answer
pairs (an answer pair's early and current answers, and its scores in several sessions, move
together)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from pipeline.rubric import Rubric

PAIR_KEY = ["pair_id", "early_utterance_id", "current_utterance_id"]
ANSWER_FIGURES = (  # the answer's own figures in the calibration_agreement view
    "agitation",
    "impatience_hits",
    "politeness_hits",
    "confirmation_hits",
    "structure_hits",
    "speech_rate_cpm",
)
PAIR_FIGURES = ("delta_agitation", "delta_speech_rate_cpm")  # the verdict's: current - early
MIN_PAIRS = 5  # fewer aligned pairs: no interval


@dataclass(frozen=True)
class RankFit:
    item: str
    figure: str
    expected: int | None  # the rubric's sign for this figure, None when it names none
    rho: float | None
    low: float | None
    high: float | None
    n_answers: int
    n_pairs: int


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def rank_fit(
    rows: pd.DataFrame, figure: str, confidence: float, resamples: int, rng: np.random.Generator
) -> tuple[float | None, float | None, float | None, int, int]:
    """(rho, low, high, answers, pairs) of mean_score against `figure` over these rows."""
    data = rows[[*PAIR_KEY, "mean_score", figure]].dropna()
    cluster = data.groupby(PAIR_KEY, sort=False).ngroup().to_numpy()
    n_pairs = int(cluster.max()) + 1 if len(cluster) else 0
    x, y = data["mean_score"].to_numpy(float), data[figure].to_numpy(float)
    rho = _rho(x, y)
    if np.isnan(rho):
        return None, None, None, len(data), n_pairs
    if n_pairs < MIN_PAIRS:
        return rho, None, None, len(data), n_pairs
    members = [np.flatnonzero(cluster == c) for c in range(n_pairs)]
    draws = []
    for _ in range(resamples):
        take = np.concatenate([members[c] for c in rng.integers(0, n_pairs, n_pairs)])
        draws.append(_rho(x[take], y[take]))
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return rho, float(low), float(high), len(data), n_pairs


def rank_fits(
    agreement: pd.DataFrame,
    rubric: Rubric,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 17,
    answer_figures: Sequence[str] = ANSWER_FIGURES,
) -> list[RankFit]:
    """Every rubric item against every answer figure, and the verdict against the pair's
    deltas, from the calibration_agreement rows of all sessions."""
    out = []
    for item in (*rubric.items, rubric.verdict):
        rows = agreement[agreement["item"] == item.key]
        expected = dict(item.figures)
        figures = PAIR_FIGURES if item is rubric.verdict else answer_figures
        for figure in figures:
            if figure not in rows.columns:
                continue
            rng = np.random.default_rng([seed, len(out)])
            rho, low, high, n, pairs = rank_fit(rows, figure, confidence, resamples, rng)
            out.append(RankFit(item.key, figure, expected.get(figure), rho, low, high, n, pairs))
    return out
