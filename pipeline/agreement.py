"""How far a calibration session's evaluators agree, and how their scores line up with
callreview's own figures (docs/METRICS.md, "Calibration agreement").

- Inter-rater agreement per rubric item: Krippendorff's alpha from the `krippendorff` package
  (ordinal for the 1-5 items, nominal for the drifted verdict). A unit is one scored answer:
  an aligned pair's early or current side (the pair itself for the verdict). Alpha copes with
  evaluators who skipped some units.
- Each evaluator's offset: the mean of (their score - the mean of the other evaluators' scores)
  over the units they scored with at least one other evaluator.
- What to discuss first: the units and items with the widest spread (max - min).
- Fit with the figures: Spearman's rank correlation (scipy) of the group's mean score of each
  unit with the figures the rubric names for that item, and whether its sign is the expected one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import krippendorff
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from pipeline.rubric import VERDICT, Item, Rubric

UNIT = ["pair_id", "early_utterance_id", "current_utterance_id", "side"]
PAIR = ["pair_id", "early_utterance_id", "current_utterance_id"]
TOP = 5  # units and pairs listed as the ones to discuss first


@dataclass(frozen=True)
class ItemAgreement:
    item: str
    label: str
    level: str  # ordinal | nominal
    alpha: float | None
    n_units: int
    n_evaluators: int
    n_scores: int
    mean_spread: float | None
    note: str = ""  # why alpha is missing


@dataclass(frozen=True)
class Offset:
    evaluator: str
    item: str
    offset: float | None
    n_units: int


@dataclass(frozen=True)
class Spread:
    pair_id: str
    early_utterance_id: int
    current_utterance_id: int
    side: str
    item: str
    spread: float
    scores: tuple[tuple[str, int], ...]  # (evaluator, score)


@dataclass(frozen=True)
class FigureFit:
    item: str
    figure: str
    expected: int  # +1 / -1
    rho: float | None
    p_value: float | None
    n_units: int

    @property
    def as_expected(self) -> bool | None:
        return None if self.rho is None or self.rho == 0 else (self.rho > 0) == (self.expected > 0)


@dataclass(frozen=True)
class Summary:
    session: str
    evaluators: tuple[str, ...]
    n_pairs: int
    items: tuple[ItemAgreement, ...]
    offsets: tuple[Offset, ...]
    widest: tuple[Spread, ...]  # scored units, widest spread first
    pairs_to_discuss: tuple[tuple[str, int, int, float], ...]  # pair key, mean spread
    figures: tuple[FigureFit, ...]


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def item_alpha(scores: pd.DataFrame, level: str, domain: list[int]) -> tuple[float | None, str]:
    """Krippendorff's alpha of one item's scores (evaluator x unit), with why when undefined."""
    matrix = scores.pivot_table(index="evaluator", columns=UNIT, values="score", aggfunc="first")
    paired = matrix.loc[:, matrix.notna().sum(axis=0) >= 2]
    if matrix.shape[0] < 2 or paired.shape[1] == 0:
        return None, "needs 2+ evaluators scoring the same answer"
    values = paired.to_numpy(dtype=float)
    if len(np.unique(values[~np.isnan(values)])) < 2:
        return None, "every score is the same: no variation to agree on"
    value = krippendorff.alpha(
        reliability_data=matrix.to_numpy(dtype=float),
        level_of_measurement=level,
        value_domain=domain,
    )
    return _clean(value), ""


def _spreads(scores: pd.DataFrame) -> pd.DataFrame:
    g = scores.groupby([*UNIT, "item"])["score"]
    return g.agg(spread=lambda s: s.max() - s.min(), n="count").reset_index()


def _offsets(scores: pd.DataFrame, items: list[str]) -> list[Offset]:
    out = []
    for item in items:
        s = scores[scores["item"] == item]
        grp = s.groupby(UNIT)["score"]
        total, count = grp.transform("sum"), grp.transform("count")
        others = (total - s["score"]) / (count - 1)
        diff = (s["score"] - others)[count >= 2]
        by_evaluator = diff.groupby(s.loc[diff.index, "evaluator"])
        for evaluator in sorted(s["evaluator"].unique()):
            d = by_evaluator.get_group(evaluator) if evaluator in by_evaluator.groups else None
            out.append(
                Offset(
                    evaluator,
                    item,
                    _clean(float(d.mean())) if d is not None else None,
                    0 if d is None else len(d),
                )
            )
    return out


def _fits(agreement: pd.DataFrame, rubric: Rubric) -> list[FigureFit]:
    out = []
    for item in (*rubric.items, rubric.verdict):
        rows = agreement[agreement["item"] == item.key]
        for figure, expected in item.figures:
            if figure not in rows.columns:
                continue
            xy = rows[["mean_score", figure]].apply(pd.to_numeric, errors="coerce").dropna()
            rho = p = None
            if len(xy) >= 3 and xy.nunique().min() >= 2:
                res = spearmanr(xy["mean_score"], xy[figure])
                rho, p = _clean(res.statistic), _clean(res.pvalue)
            out.append(FigureFit(item.key, figure, expected, rho, p, len(xy)))
    return out


def summarise(
    session: str, scores: pd.DataFrame, agreement: pd.DataFrame, rubric: Rubric
) -> Summary:
    """A session's agreement from its calibration_scores rows and calibration_agreement view."""
    scores = scores.dropna(subset=["score"]).copy()
    scores["score"] = scores["score"].astype(float)
    items: list[ItemAgreement] = []
    spreads = (
        _spreads(scores) if len(scores) else pd.DataFrame(columns=[*UNIT, "item", "spread", "n"])
    )
    for item in (*rubric.items, rubric.verdict):
        s = scores[scores["item"] == item.key]
        verdict = item.key == VERDICT
        domain = [0, 1] if verdict else list(range(rubric.low, rubric.high + 1))
        level = "nominal" if verdict else "ordinal"
        alpha, note = item_alpha(s, level, domain) if len(s) else (None, "no scores")
        sp = spreads[(spreads["item"] == item.key) & (spreads["n"] >= 2)]["spread"]
        items.append(
            ItemAgreement(
                item.key,
                _label(item),
                level,
                alpha,
                int(s.groupby(UNIT).ngroups) if len(s) else 0,
                int(s["evaluator"].nunique()),
                len(s),
                _clean(float(sp.mean())) if len(sp) else None,
                note,
            )
        )
    return Summary(
        session=session,
        evaluators=tuple(sorted(scores["evaluator"].unique())),
        n_pairs=int(scores.groupby(PAIR).ngroups) if len(scores) else 0,
        items=tuple(items),
        offsets=tuple(_offsets(scores, list(rubric.keys))),
        widest=tuple(_widest(scores, spreads)),
        pairs_to_discuss=tuple(_pairs_to_discuss(spreads)),
        figures=tuple(_fits(agreement, rubric)),
    )


def _label(item: Item) -> str:
    return f"{item.label} {item.en}"


def _widest(scores: pd.DataFrame, spreads: pd.DataFrame) -> list[Spread]:
    top = spreads[(spreads["n"] >= 2) & (spreads["spread"] > 0)]
    top = top.sort_values(
        ["spread", *UNIT, "item"], ascending=[False, True, True, True, True, True]
    )
    out = []
    for r in top.head(TOP).itertuples():
        mask = np.ones(len(scores), dtype=bool)
        for col in (*UNIT, "item"):
            mask &= (scores[col] == getattr(r, col)).to_numpy()
        who = scores[mask].sort_values("evaluator")
        out.append(
            Spread(
                r.pair_id,
                int(r.early_utterance_id),
                int(r.current_utterance_id),
                r.side,
                r.item,
                float(r.spread),
                tuple((e, int(v)) for e, v in zip(who["evaluator"], who["score"], strict=True)),
            )
        )
    return out


def _pairs_to_discuss(spreads: pd.DataFrame) -> list[tuple[str, int, int, float]]:
    scored = spreads[(spreads["n"] >= 2) & (spreads["item"] != VERDICT)]
    if scored.empty:
        return []
    mean = scored.groupby(PAIR)["spread"].mean().sort_values(ascending=False, kind="stable")
    return [(p, int(e), int(c), float(v)) for (p, e, c), v in mean.head(TOP).items() if v > 0]
