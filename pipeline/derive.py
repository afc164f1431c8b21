"""Figures that need an agent's other calls: tenure and cohort (early / current), the agent's
own early-career baseline, agitation relative to it, and per-agent drift.

Inputs and outputs are pandas frames with the columns of the DuckDB tables, so the same
functions serve a fresh batch and a nightly run over the whole history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import AgitationOptions, BaselineOptions, CohortOptions
from pipeline.tone import hz_to_st

# Acoustic features behind agitation, as utterance columns (pitch_st is relative to baseline).
AGITATION_FEATURES = ("pitch_st", "pitch_range_st", "loudness_dbfs", "speech_rate_cpm")


def _std_floors(options: BaselineOptions) -> dict[str, float]:
    return {
        "pitch_st": options.min_std_pitch_st,
        "pitch_range_st": options.min_std_pitch_range_st,
        "loudness_dbfs": options.min_std_loudness_db,
        "speech_rate_cpm": options.min_std_rate_cpm,
    }


def _weights(options: AgitationOptions) -> dict[str, float]:
    return {
        "pitch_st": options.w_pitch,
        "pitch_range_st": options.w_pitch_range,
        "loudness_dbfs": options.w_loudness,
        "speech_rate_cpm": options.w_rate,
    }


def assign_cohorts(calls: pd.DataFrame, options: CohortOptions) -> pd.DataFrame:
    """call_id, tenure_days, cohort for the ok calls (docs/CONTRACTS.md, "Early and current").

    early: within `early_days` of agent_hired_at, else the agent's earliest K calls.
    current: within `current_days` before the agent's latest call, else the latest K calls.
    A call that qualifies as both stays early: tenure decides first.
    """
    k = options.fallback_calls
    out = []
    for _, group in calls.sort_values("recorded_at").groupby("agent_id", sort=False):
        g = group.copy()
        recorded = pd.to_datetime(g["recorded_at"])
        hired = pd.to_datetime(g["agent_hired_at"])
        g["tenure_days"] = (recorded.dt.normalize() - hired).dt.days.astype("Int64")
        has_hire = hired.notna()
        early = (has_hire & (g["tenure_days"] <= options.early_days)).to_numpy(
            dtype=bool, copy=True
        )
        no_hire = ~has_hire.to_numpy()
        if no_hire.any():  # earliest K of the calls without a hire date
            idx = np.flatnonzero(no_hire)[:k]
            early[idx] = True
        latest = recorded.max()
        if has_hire.all():
            current = (recorded >= latest - pd.Timedelta(days=options.current_days)).to_numpy(
                copy=True
            )
        else:
            current = np.zeros(len(g), dtype=bool)
            current[-k:] = True
        current &= ~early
        g["cohort"] = np.where(early, "early", np.where(current, "current", None))
        out.append(g[["call_id", "tenure_days", "cohort"]])
    if not out:
        return pd.DataFrame(columns=["call_id", "tenure_days", "cohort"])
    return pd.concat(out, ignore_index=True)


def agent_baselines(utts: pd.DataFrame, options: BaselineOptions) -> pd.DataFrame:
    """Per agent: mean and floored std of each agitation feature over early agent utterances
    (all the agent's utterances when it has no early calls). `utts` holds agent utterances with
    agent_id, cohort, pitch_median_hz, pitch_range_st, loudness_dbfs, speech_rate_cpm."""
    floors = _std_floors(options)
    rows = []
    for agent_id, g in utts.groupby("agent_id"):
        ref = g[g["cohort"] == "early"]
        source = "early"
        if ref["pitch_median_hz"].notna().sum() < options.min_utterances:
            ref, source = g, "all"
        row: dict[str, object] = {
            "agent_id": agent_id,
            "baseline_source": source,
            "baseline_pitch_hz": float(np.exp(np.log(ref["pitch_median_hz"]).mean()))
            if ref["pitch_median_hz"].notna().any()
            else np.nan,
        }
        st = hz_to_st(ref["pitch_median_hz"], row["baseline_pitch_hz"])
        feats = {
            "pitch_st": st,
            "pitch_range_st": ref["pitch_range_st"],
            "loudness_dbfs": ref["loudness_dbfs"],
            "speech_rate_cpm": ref["speech_rate_cpm"],
        }
        for name in AGITATION_FEATURES:
            v = feats[name].dropna()
            row[f"{name}_mean"] = float(v.mean()) if len(v) else np.nan
            row[f"{name}_std"] = max(float(v.std(ddof=0)) if len(v) > 1 else 0.0, floors[name])
        rows.append(row)
    return pd.DataFrame(rows)


def utterance_agitation(
    utts: pd.DataFrame, baselines: pd.DataFrame, options: AgitationOptions
) -> pd.DataFrame:
    """call_id, utterance_id, pitch_vs_baseline_st, agitation for agent utterances.

    agitation = weighted mean of z-scores of pitch, pitch range, loudness and speaking rate
    against the agent's own early baseline; missing features are left out of the mean.
    """
    weights = _weights(options)
    u = utts.merge(baselines, on="agent_id", how="left")
    u["pitch_st"] = hz_to_st(u["pitch_median_hz"], u["baseline_pitch_hz"])
    num = pd.Series(0.0, index=u.index)
    den = pd.Series(0.0, index=u.index)
    for name in AGITATION_FEATURES:
        z = (u[name] - u[f"{name}_mean"]) / u[f"{name}_std"]
        ok = z.notna()
        num[ok] += weights[name] * z[ok]
        den[ok] += weights[name]
    u["agitation"] = (num / den).where(den > 0)
    return u[["call_id", "utterance_id", "pitch_st", "agitation"]].rename(
        columns={"pitch_st": "pitch_vs_baseline_st"}
    )


def call_agitation(utts: pd.DataFrame, options: AgitationOptions) -> pd.DataFrame:
    """Per call: duration-weighted mean agitation of agent utterances, share flagged high,
    and the call's agent pitch relative to baseline."""
    high = options.high
    rows = []
    for call_id, g in utts.groupby("call_id"):
        g = g[g["agitation"].notna()]
        if g.empty:
            rows.append(
                {
                    "call_id": call_id,
                    "agitation": np.nan,
                    "agitation_high_share": np.nan,
                    "agent_pitch_vs_baseline_st": np.nan,
                }
            )
            continue
        w = (g["end_s"] - g["start_s"]).clip(lower=0.1)
        rows.append(
            {
                "call_id": call_id,
                "agitation": float(np.average(g["agitation"], weights=w)),
                "agitation_high_share": float(w[g["agitation"] > high].sum() / w.sum()),
                "agent_pitch_vs_baseline_st": float(
                    np.average(g["pitch_vs_baseline_st"].fillna(0), weights=w)
                ),
            }
        )
    return pd.DataFrame(
        rows, columns=["call_id", "agitation", "agitation_high_share", "agent_pitch_vs_baseline_st"]
    )


def agent_drift(metrics: pd.DataFrame, metric_columns: list[str]) -> pd.DataFrame:
    """One row per agent and metric: early vs current means, delta and a standardised effect.

    `metrics` has agent_id, cohort and the metric columns, one row per call.
    effect_size = delta / pooled standard deviation (Cohen's d), null when undefined.
    """
    rows = []
    for agent_id, g in metrics.groupby("agent_id"):
        early, current = g[g["cohort"] == "early"], g[g["cohort"] == "current"]
        for m in metric_columns:
            e, c = early[m].dropna().astype(float), current[m].dropna().astype(float)
            em = float(e.mean()) if len(e) else np.nan
            cm = float(c.mean()) if len(c) else np.nan
            pooled = (
                np.sqrt((e.var(ddof=1) + c.var(ddof=1)) / 2)
                if len(e) > 1 and len(c) > 1
                else np.nan
            )
            delta = cm - em
            rows.append(
                {
                    "agent_id": agent_id,
                    "metric": m,
                    "early_mean": em,
                    "current_mean": cm,
                    "delta": delta,
                    "n_early": len(e),
                    "n_current": len(c),
                    "effect_size": float(delta / pooled)
                    if pooled and np.isfinite(pooled) and pooled > 0
                    else np.nan,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "agent_id",
            "metric",
            "early_mean",
            "current_mean",
            "delta",
            "n_early",
            "n_current",
            "effect_size",
        ],
    )
