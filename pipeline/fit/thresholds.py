"""Per rule flag (pipeline/data/rules.toml): the threshold on its metric that best separates
the current calls evaluators found drifted from the other scored current calls.

A current call is drifted when most evaluators said so on most of its aligned answer pairs:
per answer pair, the share of evaluators' `drifted` verdicts that are yes is over one half;
per call, the share of its answer pairs so judged is over one half (all sessions pooled).
The threshold is chosen by balanced accuracy (the mean of the share of drifted calls flagged
and the share of the others not flagged, so a rare label is not won by flagging nothing), among
the midpoints between neighbouring values; its agreement is measured by stratified k-fold
cross-validation (scikit-learn): chosen on the other folds, scored on the held-out one.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score
from sklearn.model_selection import StratifiedKFold

from pipeline.config import Rule

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
PAIR_KEY = ["pair_id", "early_utterance_id", "current_utterance_id"]


@dataclass(frozen=True)
class RuleFit:
    rule: str
    label: str
    metric: str
    op: str
    in_force: float
    n_calls: int  # labelled current calls with a value
    n_drifted: int
    suggested: float | None  # None: too few labelled calls of either kind, or no variation
    agreement_in_force: float | None  # balanced accuracy of the threshold in force, all calls
    agreement_suggested: float | None  # cross-validated balanced accuracy of the chosen one
    kappa_suggested: float | None  # cross-validated Cohen's kappa
    note: str = ""


def drifted_calls(verdicts: pd.DataFrame) -> pd.Series:
    """current_call_id -> drifted (bool), from `drifted` verdict rows (one per session,
    evaluator and answer pair: current_call_id, pair key columns, score 1 yes / 0 no)."""
    if verdicts.empty:
        return pd.Series(dtype=bool, name="drifted")
    v = verdicts.dropna(subset=["score"])
    per_pair = v.groupby(["current_call_id", *PAIR_KEY])["score"].mean() > 0.5
    return (per_pair.groupby("current_call_id").mean() > 0.5).rename("drifted")


def _balanced(values: np.ndarray, drifted: np.ndarray, op: str, t: float) -> float:
    return float(balanced_accuracy_score(drifted, OPS[op](values, t)))


def best_threshold(values: np.ndarray, drifted: np.ndarray, op: str) -> float:
    """The midpoint between neighbouring values with the best balanced accuracy (the lowest of
    equally good ones)."""
    v = np.unique(values)
    candidates = (v[:-1] + v[1:]) / 2 if len(v) > 1 else v
    scores = [_balanced(values, drifted, op, t) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def fit_rule(values: np.ndarray, drifted: np.ndarray, rule: Rule, folds: int, seed: int) -> RuleFit:
    """The suggested threshold of one rule on labelled calls (values without NaN)."""
    n_drifted = int(drifted.sum())
    base = dict(
        rule=rule.name,
        label=rule.label,
        metric=rule.metric,
        op=rule.op,
        in_force=rule.threshold,
        n_calls=len(values),
        n_drifted=n_drifted,
    )
    smaller = min(n_drifted, len(values) - n_drifted)
    if smaller < 2 or np.ptp(values) == 0:
        why = "no variation" if len(values) and np.ptp(values) == 0 else "too few labelled calls"
        return RuleFit(**base, suggested=None, agreement_in_force=None, agreement_suggested=None,
                       kappa_suggested=None, note=why)  # fmt: skip
    predicted = np.zeros(len(values), dtype=bool)
    split = StratifiedKFold(n_splits=min(folds, smaller), shuffle=True, random_state=seed)
    for train, test in split.split(values, drifted):
        t = best_threshold(values[train], drifted[train], rule.op)
        predicted[test] = OPS[rule.op](values[test], t)
    return RuleFit(
        **base,
        suggested=best_threshold(values, drifted, rule.op),
        agreement_in_force=_balanced(values, drifted, rule.op, rule.threshold),
        agreement_suggested=float(balanced_accuracy_score(drifted, predicted)),
        kappa_suggested=float(cohen_kappa_score(drifted, predicted)),
    )


def fit_rules(
    labels: pd.Series,
    metrics: pd.DataFrame,
    rules: tuple[Rule, ...],
    folds: int = 5,
    seed: int = 17,
) -> list[RuleFit]:
    """Every rule fitted on the labelled current calls (`metrics`: call_id and rule metrics)."""
    m = metrics.set_index("call_id").reindex(labels.index)
    out = []
    for rule in rules:
        if rule.metric not in m.columns:
            continue
        values = pd.to_numeric(m[rule.metric], errors="coerce")
        ok = values.notna().to_numpy()
        out.append(
            fit_rule(values.to_numpy(float)[ok], labels.to_numpy(bool)[ok], rule, folds, seed)
        )
    return out
