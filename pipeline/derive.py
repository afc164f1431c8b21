"""Figures that need an agent's other calls: tenure and cohort (early / current), the agent's
own early-career baseline, agitation relative to it, and per-agent drift.

Inputs and outputs are pandas frames with the columns of the DuckDB tables, so the same
functions serve a fresh batch and a nightly run over the whole history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import AgitationSpec, BaselineOptions, CohortOptions
from pipeline.tone import hz_to_st

# The agent's early spread of the descriptive figures, which the report uses to rank changes.
DESCRIPTIVE = ("pitch_st", "pitch_range_st", "loudness_dbfs", "speech_rate_cpm")


def _std_floors(options: BaselineOptions) -> dict[str, float]:
    return {
        "pitch_st": options.min_std_pitch_st,
        "pitch_range_st": options.min_std_pitch_range_st,
        "loudness_dbfs": options.min_std_loudness_db,
        "speech_rate_cpm": options.min_std_rate_cpm,
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
    """Per agent: the early-career level and floored spread of the descriptive figures (pitch,
    pitch range, loudness, speaking rate) over early agent utterances (all the agent's utterances
    when it has too few early ones). Pitch deltas are read against `baseline_pitch_hz`."""
    floors = _std_floors(options)
    rows = []
    for agent_id, g in utts.groupby("agent_id"):
        ref, source = _reference(g, "pitch_median_hz", options.min_utterances)
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
        for name in DESCRIPTIVE:
            v = feats[name].dropna()
            row[f"{name}_mean"] = float(v.mean()) if len(v) else np.nan
            row[f"{name}_std"] = max(float(v.std(ddof=0)) if len(v) > 1 else 0.0, floors[name])
        rows.append(row)
    return pd.DataFrame(rows)


def _reference(g: pd.DataFrame, column: str, minimum: int) -> tuple[pd.DataFrame, str]:
    """The early utterances, or all of them when fewer than `minimum` early ones have `column`."""
    early = g[g["cohort"] == "early"]
    if early[column].notna().sum() >= minimum:
        return early, "early"
    return g, "all"


def agitation_baselines(utts: pd.DataFrame, spec: AgitationSpec) -> pd.DataFrame:
    """Per agent and agitation feature: the early-career mean and floored std (long format, so a
    refitted model with other features needs no schema change)."""
    rows = []
    for agent_id, g in utts.groupby("agent_id"):
        ref, source = _reference(g, spec.features[0], spec.min_baseline_utterances)
        for name, weight, floor in zip(spec.features, spec.weights, spec.std_floors, strict=True):
            v = ref[name].dropna()
            rows.append(
                {
                    "agent_id": agent_id,
                    "feature": name,
                    "weight": weight,
                    "source": source,
                    "mean": float(v.mean()) if len(v) else np.nan,
                    "std": max(float(v.std(ddof=0)) if len(v) > 1 else 0.0, floor),
                    "n_utterances": len(v),
                }
            )
    return pd.DataFrame(
        rows, columns=["agent_id", "feature", "weight", "source", "mean", "std", "n_utterances"]
    )


def unchanged_agents(
    new: pd.DataFrame, stored: pd.DataFrame | None, keys: list[str], rtol: float = 1e-9
) -> set[str]:
    """The agents (keys[0]) whose rows in `new` are those `stored`, value for value (NaN equal to
    NaN; floats to `rtol`: the same utterances summed in another order differ in the last bits):
    what was derived from those rows before still holds."""
    if stored is None or stored.empty or new.empty:
        return set()
    values = [c for c in new.columns if c not in keys]
    both = new.merge(
        stored[keys + values], on=keys, how="outer", suffixes=("", "_stored"), indicator=True
    )
    same = both["_merge"] == "both"
    for c in values:
        a, b = both[c], both[f"{c}_stored"]
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            x, y = a.astype("float64"), b.astype("float64")
            equal = np.isclose(x, y, rtol=rtol, atol=0.0) | (x.isna() & y.isna())
        else:
            equal = (a == b) | (a.isna() & b.isna())
        same &= equal
    agents = same.groupby(both[keys[0]]).all()
    return set(agents.index[agents])


def agitation_scores(utts: pd.DataFrame, base: pd.DataFrame, key: str) -> pd.Series:
    """sum(weight * z) / sum(|weight|) over the features present, z against the baseline rows of
    the same `key` (agent_id, or a customer's call); NaN where no feature is present."""
    num = pd.Series(0.0, index=utts.index)
    den = pd.Series(0.0, index=utts.index)
    for name, b in base.groupby("feature"):
        ref = b.set_index(key)
        mean, std = utts[key].map(ref["mean"]), utts[key].map(ref["std"])
        z = (utts[name] - mean) / std
        ok = z.notna()
        weight = float(b["weight"].iloc[0])
        num[ok] += weight * z[ok]
        den[ok] += abs(weight)
    return (num / den).where(den > 0)


def utterance_agitation(
    utts: pd.DataFrame, baselines: pd.DataFrame, agitation_base: pd.DataFrame
) -> pd.DataFrame:
    """call_id, utterance_id, pitch_vs_baseline_st, agitation for agent utterances: agitation is
    the fitted voice-feature model (pipeline/data/agitation.toml) against the agent's own early
    baseline."""
    u = utts.merge(baselines[["agent_id", "baseline_pitch_hz"]], on="agent_id", how="left")
    u["pitch_vs_baseline_st"] = hz_to_st(u["pitch_median_hz"], u["baseline_pitch_hz"])
    u["agitation"] = agitation_scores(u, agitation_base, "agent_id")
    return u[["call_id", "utterance_id", "pitch_vs_baseline_st", "agitation"]]


def customer_agitation(utts: pd.DataFrame, spec: AgitationSpec, opening: int = 3) -> pd.DataFrame:
    """Per call: how far the customer's voice rose above their own opening turns of the same call.

    Customers change from call to call, so there is no career baseline: the first `opening`
    customer utterances with voice features are the reference (per feature: mean, and standard
    deviation floored as in agitation_baselines), the rest are scored with the agent's model and
    averaged by duration. A customer who was angry from the first word is not caught; one who
    got angry during the call is, so such a call is not read as the agent's drift. Computed for
    all calls at once (grouped, not looped: a night's history holds 100,000 calls).
    """
    cust = utts[utts["speaker"] == "customer"].sort_values(["call_id", "start_s"])
    cust = cust[cust[spec.features[0]].notna()]
    turn = cust.groupby("call_id", sort=False).cumcount()
    ref, rest = cust[turn < opening].groupby("call_id"), cust[turn >= opening]
    if rest.empty:
        return pd.DataFrame(columns=["call_id", "customer_agitation"])
    num = pd.Series(0.0, index=rest.index)
    den = pd.Series(0.0, index=rest.index)
    for name, weight, floor in zip(spec.features, spec.weights, spec.std_floors, strict=True):
        mean = rest["call_id"].map(ref[name].mean())
        std = rest["call_id"].map(ref[name].std(ddof=0).fillna(0.0).clip(lower=floor))
        z = (rest[name] - mean) / std
        ok = z.notna()
        num[ok] += weight * z[ok]
        den[ok] += abs(weight)
    scored = pd.DataFrame(
        {
            "call_id": rest["call_id"],
            "score": (num / den).where(den > 0),
            "w": (rest["end_s"] - rest["start_s"]).clip(lower=0.1),
        }
    ).dropna(subset=["score"])
    scored["sw"] = scored["score"] * scored["w"]
    sums = scored.groupby("call_id")[["sw", "w"]].sum()
    return pd.DataFrame(
        {"call_id": sums.index, "customer_agitation": (sums["sw"] / sums["w"]).to_numpy()}
    ).reset_index(drop=True)


def call_agitation(utts: pd.DataFrame, spec: AgitationSpec) -> pd.DataFrame:
    """Per call: duration-weighted mean agitation of agent utterances, share flagged high,
    and the call's agent pitch relative to baseline (grouped over all calls at once)."""
    columns = ["call_id", "agitation", "agitation_high_share", "agent_pitch_vs_baseline_st"]
    calls = pd.Index(utts["call_id"].unique(), name="call_id")
    g = utts[utts["agitation"].notna()]
    w = (g["end_s"] - g["start_s"]).clip(lower=0.1)
    parts = pd.DataFrame(
        {
            "call_id": g["call_id"],
            "w": w,
            "aw": g["agitation"] * w,
            "hw": w.where(g["agitation"] > spec.high, 0.0),
            "pw": g["pitch_vs_baseline_st"].fillna(0) * w,
        }
    )
    sums = parts.groupby("call_id").sum().reindex(calls)  # a call with no agitation: NaN
    out = pd.DataFrame(
        {
            "agitation": sums["aw"] / sums["w"],
            "agitation_high_share": sums["hw"] / sums["w"],
            "agent_pitch_vs_baseline_st": sums["pw"] / sums["w"],
        },
        index=calls,
    )
    return out.reset_index()[columns].sort_values("call_id").reset_index(drop=True)


def agent_drift(metrics: pd.DataFrame, metric_columns: list[str]) -> pd.DataFrame:
    """One row per agent and metric: early vs current means, delta and a standardised effect.

    `metrics` has agent_id, cohort and the metric columns, one row per call, and where known
    transcript_version and asr_model (what made each call's text).
    effect_size = delta / pooled standard deviation (Cohen's d), null when undefined.
    mixed_versions: the early and current calls' text was not all made the same way.
    """
    # grouped over all agents at once: a per-agent, per-metric loop took minutes on a night
    # that recomputes a thousand agents
    agents = pd.Index(sorted(metrics["agent_id"].dropna().unique()), name="agent_id")
    values = metrics[metric_columns].astype("float64")

    def side(cohort: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        g = values[metrics["cohort"] == cohort].groupby(metrics["agent_id"])
        return (
            g.mean().reindex(agents),
            g.var(ddof=1).reindex(agents),
            g.count().reindex(agents).fillna(0).astype(int),
        )

    (em, ev, en), (cm, cv, cn) = side("early"), side("current")
    pooled = np.sqrt((ev + cv) / 2).where((en > 1) & (cn > 1))
    delta = cm - em
    effect = (delta / pooled).where(pooled.notna() & np.isfinite(pooled) & (pooled > 0))

    def long(frame: pd.DataFrame) -> np.ndarray:  # agent-major, metrics in the given order
        return frame[metric_columns].to_numpy().reshape(-1)

    out = pd.DataFrame(
        {
            "agent_id": np.repeat(agents.to_numpy(), len(metric_columns)),
            "metric": np.tile(np.array(metric_columns, dtype=object), len(agents)),
            "early_mean": long(em),
            "current_mean": long(cm),
            "delta": long(delta),
            "n_early": long(en),
            "n_current": long(cn),
            "effect_size": long(effect),
        }
    )
    out["mixed_versions"] = np.repeat(_mixed_versions(metrics, agents), len(metric_columns))
    return out


def _mixed_versions(metrics: pd.DataFrame, agents: pd.Index) -> np.ndarray:
    """Per agent: whether its early and current calls' text was made more than one way (None
    when it has neither, or the versions are not known)."""
    if "transcript_version" not in metrics:
        return np.full(len(agents), None, dtype=object)
    both = metrics[metrics["cohort"].isin(["early", "current"])]
    made = (
        both["transcript_version"].astype(str) + "\x00" + both["asr_model"].fillna("").astype(str)
    )
    ways = made.groupby(both["agent_id"]).nunique().reindex(agents)
    return np.array([None if pd.isna(n) else bool(n > 1) for n in ways], dtype=object)
