"""How often a coaching outcome's verdict is wrong, and how often a real move is found, at the
documented minimum number of calls (docs/METRICS.md, "Coaching outcomes").

Each simulated outcome is one agent, one event and one figure, scored by the same functions
the pipeline uses (pipeline/coaching/stats.py): the coached agent has exactly `min_calls`
calls before and after the event (the fewest that get a verdict: the hardest case), the
comparison is `--controls` uncoached agents with between `min_calls` and twice as many calls
in each window, every agent has a level of its own, and every agent's calls shift by a
seasonal 0.3 standard deviations after the event date (which the comparison must remove).
Call figures are drawn normal and, to be honest about skewed counts and rates, gamma (shape 2).

  no change  the coached agent moves only with the season: any improved / worse is false
  true move  the coached agent also moves 0.5 pooled standard deviations the better way:
             power = the share called improved

    PYTHONPATH=. .venv/bin/python scripts/coaching_sim.py            # at the documented minimum
    PYTHONPATH=. .venv/bin/python scripts/coaching_sim.py --calls 60 70 80 --sims 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from pipeline.coaching.options import CoachingOptions
from pipeline.coaching.stats import IMPROVED, NO_CLEAR_CHANGE, Samples, estimate, verdict

SEASON_SD = 0.3
MOVE_SD = 0.5
DIRECTION = 1  # a rise is a concern (agitation, speaking rate): improving = falling


def _noise(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    """Unit-variance call noise, centred."""
    if kind == "normal":
        return rng.standard_normal(n)
    shape = 2.0
    return (rng.gamma(shape, 1.0, n) - shape) / np.sqrt(shape)


def _agent(
    rng: np.random.Generator, kind: str, n_before: int, n_after: int, move: float
) -> Samples:
    level = rng.normal(0.0, 1.0)
    before = level + _noise(rng, kind, n_before)
    after = level + SEASON_SD + move + _noise(rng, kind, n_after)
    return Samples(before, after)


def _comparison(rng: np.random.Generator, kind: str, calls: int, controls: int) -> Samples:
    """Uncoached agents' calls, each relative to its own agent's mean (as the pipeline does)."""
    before, after = [], []
    for _ in range(controls):
        s = _agent(
            rng,
            kind,
            int(rng.integers(calls, 2 * calls + 1)),
            int(rng.integers(calls, 2 * calls + 1)),
            0.0,
        )
        centre = np.mean(np.concatenate([s.before, s.after]))
        before.append(s.before - centre)
        after.append(s.after - centre)
    return Samples(np.concatenate(before), np.concatenate(after))


def rates(
    calls: int, sims: int, kind: str, controls: int, options: CoachingOptions, seed: int
) -> tuple[float, float]:
    """(false verdict rate under no change, power at a 0.5 pooled-SD improvement)."""
    rng = np.random.default_rng(seed)
    false = found = 0
    for _ in range(sims):
        for move in (0.0, -DIRECTION * MOVE_SD):
            coached = _agent(rng, kind, calls, calls, move)
            est = estimate(
                coached,
                _comparison(rng, kind, calls, controls),
                options.confidence,
                options.resamples,
                rng,
            )
            v = verdict(est, DIRECTION, calls, calls, calls)
            if move == 0.0:
                false += v != NO_CLEAR_CHANGE
            else:
                found += v == IMPROVED
    return false / sims, found / sims


def main() -> None:
    options = CoachingOptions()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls",
        type=int,
        nargs="*",
        default=[options.min_calls],
        help="calls per window (default: [coaching] min_calls)",
    )
    parser.add_argument("--sims", type=int, default=2000, help="simulated outcomes per case")
    parser.add_argument(
        "--controls", type=int, default=5, help="uncoached agents in the comparison"
    )
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument(
        "--confidence", type=float, default=options.confidence, help="try another interval level"
    )
    args = parser.parse_args()
    options = dataclasses.replace(options, confidence=args.confidence)
    print(
        f"confidence {options.confidence}, {options.resamples} resamples, {args.controls} comparison agents, season +{SEASON_SD} SD, true move {MOVE_SD} pooled SD, {args.sims} outcomes per case"
    )
    print(f"{'calls':>5} {'noise':>7} {'false verdicts':>15} {'power':>7}  ok (<= 5%, >= 80%)")
    ok_all = True
    for calls in args.calls:
        for kind in ("normal", "gamma"):
            t = time.perf_counter()
            false, power = rates(calls, args.sims, kind, args.controls, options, args.seed + calls)
            ok = false <= 0.05 and power >= 0.80
            ok_all &= ok or calls != options.min_calls
            print(
                f"{calls:>5} {kind:>7} {false:>14.1%} {power:>7.1%}  {'yes' if ok else 'NO'}  ({time.perf_counter() - t:.0f} s)"
            )
    if options.min_calls in args.calls:
        print(
            f"documented minimum ({options.min_calls} calls a window): {'both hold' if ok_all else 'NOT MET'}"
        )


if __name__ == "__main__":
    main()
