"""The outcome of one coaching event on one figure: difference in differences with a cluster
bootstrap interval, an effect size and a verdict (docs/METRICS.md, "Coaching outcomes").

The unit resampled is the call: each value passed in is one call's figure (a call holds many
utterances, which move together, so resampling utterances would understate the spread).

  change       coached agent: mean after - mean before
  comparison   uncoached agents over the same dates: mean after - mean before of their calls,
               each call taken relative to its own agent's mean over the two windows, so a
               change in which agents happened to take calls is not read as a change
  did          change - comparison (just change when there is no comparison)
  interval     percentile bootstrap of did, every sample resampled on its own (scipy)
  effect_size  did / pooled standard deviation of the coached agent's before and after calls
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Verdict = Literal["improved", "no clear change", "worse", "too few calls yet"]
IMPROVED: Verdict = "improved"
NO_CLEAR_CHANGE: Verdict = "no clear change"
WORSE: Verdict = "worse"
TOO_FEW: Verdict = "too few calls yet"
MIN_SAMPLE = 2  # calls a side needs for any estimate at all
BATCH = 100  # resamples drawn at once: memory is BATCH x the calls of the largest sample


@dataclass(frozen=True)
class Samples:
    """One call figure per call, before and after the event."""

    before: np.ndarray
    after: np.ndarray

    def usable(self) -> bool:
        return len(self.before) >= MIN_SAMPLE and len(self.after) >= MIN_SAMPLE


@dataclass(frozen=True)
class Estimate:
    change: float
    comparison_change: float | None  # None: no uncoached agent had calls in both windows
    did: float
    low: float
    high: float
    effect_size: float | None  # None: the coached agent's calls do not vary


def _mean_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.mean(after, axis=-1) - np.mean(before, axis=-1)


def _did(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """The statistic, vectorised over resamples (scipy passes axis=-1, the calls axis)."""
    change = _mean_change(samples[0], samples[1])
    return change - _mean_change(samples[2], samples[3]) if len(samples) == 4 else change


def pooled_sd(s: Samples) -> float:
    return float(np.sqrt((np.var(s.before, ddof=1) + np.var(s.after, ddof=1)) / 2))


def estimate(
    coached: Samples,
    comparison: Samples | None,
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
) -> Estimate:
    """Difference in differences and its bootstrap interval; the coached samples must be
    usable (Samples.usable), the comparison is dropped when it is not."""
    data = [coached.before, coached.after]
    if comparison is not None and comparison.usable():
        data += [comparison.before, comparison.after]
    point = float(_did(*data))
    spread = float(np.ptp(np.concatenate(data)))
    if spread == 0:  # nothing varies: the interval is the point
        low = high = point
    else:
        ci = stats.bootstrap(
            tuple(data),
            _did,
            n_resamples=resamples,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            batch=BATCH,
            rng=rng,
        ).confidence_interval
        low, high = float(ci.low), float(ci.high)
    sd = pooled_sd(coached)
    return Estimate(
        change=float(_mean_change(coached.before, coached.after)),
        comparison_change=float(_mean_change(data[2], data[3])) if len(data) == 4 else None,
        did=point,
        low=low,
        high=high,
        effect_size=point / sd if sd > 0 else None,
    )


def verdict(est: Estimate, direction: int, n_before: int, n_after: int, min_calls: int) -> Verdict:
    """improved / worse when the interval excludes no change, with the sign the metric
    catalogue calls a concern (direction +1: a rise is a concern); too few calls yet while
    either window holds fewer than min_calls calls."""
    if direction not in (-1, 1):
        raise ValueError(f"a coaching outcome needs a figure with a direction, not {direction}")
    if n_before < min_calls or n_after < min_calls:
        return TOO_FEW
    if est.low <= 0 <= est.high:
        return NO_CLEAR_CHANGE
    return IMPROVED if direction * est.did < 0 else WORSE
