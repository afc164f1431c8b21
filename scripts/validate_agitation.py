"""Validate agitation on labelled real speech (CASIA, ../shared/eval/emotion), leave one speaker out.

Protocol (docs/METRICS.md, "Agitation"):
- Weights are fitted on one speaker and scored on the other (leave-one-speaker-out, LOSO); the
  fit uses only the training speaker's clips (its own fresh perturbation draws).
- The held-out speaker's neutral clips play the agent's early-career calls. Sentences are split
  in halves (201-225, 226-250): the baseline is the neutral readings of one half, the scored
  clips are every reading of the other half, and the other way round, so no clip is scored
  against a baseline that contains it.
- Every clip is one "call" with its own perturbation draw (baseline clips too):
    clean       as recorded (16 kHz studio)
    telephone   band-pass 300-3400 Hz, 8 kHz, G.711 mu-law, back to 16 kHz
    gain        random gain, uniform in +-10 dB per call
    noise20     white noise at 20 dB SNR (against the clip's own active speech level)
    noise10     same at 10 dB SNR
    combined    the acceptance condition: telephone channel with 20 dB line noise added at
                8 kHz before the codec, then the +-10 dB random recording gain
    mismatch    baseline clips clean (an early 16 kHz recording), scored clips `combined`
- Pairwise accuracy: share of sentences whose angry reading scores above the neutral reading of
  the same speaker and sentence. AUC: angry vs neutral clips of the speaker (Mann-Whitney).
  Both are averaged over `--draws` independent perturbation draws (the minimum is shown too).
- Speaking rate is not part of the fit: CASIA comes without sentence text here, so there is no
  character count to divide by (see docs).

    .venv/bin/python scripts/validate_agitation.py                 # the LOSO tables
    .venv/bin/python scripts/validate_agitation.py --limit 10      # quick run: 10 sentences
    .venv/bin/python scripts/validate_agitation.py --fit           # fit and print weights
    .venv/bin/python scripts/validate_agitation.py --fit --write   # ... into pipeline/data/agitation.toml

Skips with a message (exit 0) when the evaluation data is absent.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.signal
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline import prosody as P  # noqa: E402
from pipeline.config import DATA_DIR, AgitationSpec, ProsodyOptions, load_agitation  # noqa: E402

AGITATION_FILE = DATA_DIR / "agitation.toml"

DEFAULT_EVAL = ROOT.parent / "shared" / "eval" / "emotion"
SR = 16_000
EMOTIONS = ("angry", "surprise", "happy", "fear", "sad", "neutral")
CONDITIONS = ("clean", "telephone", "gain", "noise20", "noise10", "combined", "mismatch")
# what the fit sees: every channel effect, fresh draws (seeds disjoint from the test draws)
FIT_CONDITIONS = ("clean", "telephone", "gain", "noise20", "noise10", "combined")
FIT_SEED_OFFSET = 1000
CANDIDATES = P.FEATURES  # every feature prosody() computes is a candidate for the fit
L2 = 1.0  # ridge penalty of the logistic fit (on z-scores: features are already on one scale)
MIN_UNIVARIATE_AUC = 0.70  # a candidate enters the fit when it separates angry from neutral
# at least this well (in one direction) on the training speaker under each training condition


# --- data ------------------------------------------------------------------------------------


def load_manifest(
    folder: Path, emotions: tuple[str, ...] | None = None, max_sentences: int | None = None
) -> list[dict[str, str]]:
    with open(folder / "manifest.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if emotions:
        rows = [r for r in rows if r["emotion"] in emotions]
    if max_sentences:
        ids = sorted({r["sentence_id"] for r in rows})
        # keep both halves represented: the first and last max_sentences/2 sentences
        k = max(1, max_sentences // 2)
        keep = set(ids[:k]) | set(ids[-(max_sentences - k) :])
        rows = [r for r in rows if r["sentence_id"] in keep]
    return rows


_AUDIO: dict[str, np.ndarray] = {}


def load_clip(folder: Path, rel: str) -> np.ndarray:
    key = str(folder / rel)
    if key not in _AUDIO:
        x, sr = sf.read(key, dtype="float32")
        if x.ndim > 1:
            x = x.mean(axis=1)
        if sr != SR:
            x = soxr.resample(x, sr, SR)
        _AUDIO[key] = x.astype(np.float32)
    return _AUDIO[key]


# --- perturbations -----------------------------------------------------------------------------

_TEL_SOS = scipy.signal.butter(6, [300, 3400], btype="bandpass", fs=SR, output="sos")


def active_power(x: np.ndarray, sr: int) -> float:
    """Mean power of the 20 ms frames within 40 dB of the loudest: the clip's speech level."""
    n = int(0.02 * sr)
    fr = x[: len(x) // n * n].reshape(-1, n).astype(np.float64)
    pw = (fr**2).mean(axis=1)
    if pw.size == 0 or pw.max() <= 0:
        return 0.0
    return float(pw[pw >= pw.max() * 1e-4].mean())


def add_noise(x: np.ndarray, snr_db: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    sigma = math.sqrt(active_power(x, sr) / 10 ** (snr_db / 10))
    return (x + rng.normal(0.0, sigma, len(x))).astype(np.float32)


def mulaw(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """8-bit mu-law encode and decode (G.711-like companding quantiser), full scale 1.0."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round(y * 127.0) / 127.0
    return (np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu).astype(np.float32)


def telephone(
    x: np.ndarray, rng: np.random.Generator | None = None, snr_db: float | None = None
) -> np.ndarray:
    """Band-pass 300-3400 Hz, 8 kHz, optional line noise at 8 kHz, mu-law, back to 16 kHz."""
    y = scipy.signal.sosfilt(_TEL_SOS, x).astype(np.float32)
    y8 = soxr.resample(y, SR, 8000)
    if snr_db is not None and rng is not None:
        y8 = add_noise(y8, snr_db, 8000, rng)
    return soxr.resample(mulaw(y8), 8000, SR).astype(np.float32)


def perturb(x: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    def gain(y: np.ndarray) -> np.ndarray:
        return (y * 10 ** (rng.uniform(-10, 10) / 20)).astype(np.float32)

    if condition == "clean":
        return x
    if condition == "telephone":
        return telephone(x)
    if condition == "gain":
        return gain(x)
    if condition == "noise20":
        return add_noise(x, 20, SR, rng)
    if condition == "noise10":
        return add_noise(x, 10, SR, rng)
    if condition == "combined":
        return gain(telephone(x, rng, 20))
    raise ValueError(condition)


def _rng(condition: str, draw: int, path: str) -> np.random.Generator:
    h = hashlib.sha256(f"{condition}|{draw}|{path}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


# --- features ----------------------------------------------------------------------------------

_FEATS: dict[tuple, pd.DataFrame] = {}


def extract(
    folder: Path, rows: list[dict[str, str]], condition: str, draw: int, opts: ProsodyOptions
) -> pd.DataFrame:
    """Prosody of every clip under one perturbation draw (cached per process)."""
    key = (str(folder), tuple(r["path"] for r in rows), condition, draw, opts)
    if key in _FEATS:
        return _FEATS[key]
    out = []
    for r in rows:
        x = perturb(load_clip(folder, r["path"]), condition, _rng(condition, draw, r["path"]))
        pr = P.prosody(x, opts)
        out.append(
            {
                "speaker": r["speaker"],
                "emotion": r["emotion"],
                "sentence": r["sentence_id"],
                "path": r["path"],
                **pr.as_dict(),
            }
        )
    df = pd.DataFrame(out)
    _FEATS[key] = df
    return df


def halves(sentences: pd.Series) -> pd.Series:
    """0 for the first half of a speaker's sentence ids, 1 for the second."""
    ids = sorted(sentences.unique())
    first = set(ids[: len(ids) // 2])
    return sentences.map(lambda s: 0 if s in first else 1)


def split_zscores(
    scored: pd.DataFrame, base: pd.DataFrame, features: tuple[str, ...], floors: tuple[float, ...]
) -> np.ndarray:
    """z-scores of `scored` rows against the same speaker's neutral rows of `base` from the
    other sentence half (rows of both frames in the same order: same clips)."""
    spec = AgitationSpec(features, tuple(1.0 for _ in features), floors, 1.0, 1)
    z = np.full((len(scored), len(features)), np.nan)
    half = halves(scored["sentence"])
    for spk in scored["speaker"].unique():
        for h in (0, 1):
            target = (scored["speaker"] == spk) & (half == h)
            ref = (base["speaker"] == spk) & (half != h) & (base["emotion"] == "neutral")
            b = P.fit_baseline(P.feature_matrix(base.loc[ref].to_dict("records"), spec), spec)
            z[target.to_numpy()] = P.zscores(
                P.feature_matrix(scored.loc[target].to_dict("records"), spec), b
            )
    return z


# --- fitting -----------------------------------------------------------------------------------


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability a random positive scores above a random negative (ties count half)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def logistic(z: np.ndarray, y: np.ndarray, l2: float = L2, iters: int = 50) -> np.ndarray:
    """Ridge logistic regression (Newton steps), unpenalised intercept; returns the slopes.
    Missing z-scores count as 0 (the baseline mean), as they drop out of the score."""
    x = np.nan_to_num(z)
    xa = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xa.shape[1])
    pen = np.full(xa.shape[1], l2)
    pen[-1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(xa @ w, -30, 30)))
        grad = xa.T @ (p - y) + pen * w
        hess = (xa * (p * (1 - p))[:, None]).T @ xa + np.diag(pen) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1]


class Fit(NamedTuple):
    features: tuple[str, ...]
    weights: tuple[float, ...]  # normalised: sum of |w| = 1
    univariate_auc: dict[str, float]  # pooled over the training conditions
    worst_auc: dict[str, float]  # the worst training condition, in the pooled direction


def std_floors(
    folder: Path,
    rows: list[dict[str, str]],
    opts: ProsodyOptions,
    features: tuple[str, ...] = CANDIDATES,
) -> dict[str, float]:
    """What the recording alone does to each feature: the standard deviation of the same clip's
    value over the training conditions (clean, telephone, gain, 20 and 10 dB noise, combined;
    fresh draws), median over clips. A baseline spread below it is the channel, not the voice."""
    frames = [extract(folder, rows, c, FIT_SEED_OFFSET + 100, opts) for c in FIT_CONDITIONS]
    out = {}
    for f in features:
        m = np.vstack([fr[f].to_numpy(dtype=float) for fr in frames])
        ok = np.isfinite(m).sum(axis=0) >= 2
        with np.errstate(invalid="ignore"):
            sd = np.nanstd(m[:, ok], axis=0)
        out[f] = float(np.median(sd)) if sd.size else 0.0
    return out


def fit_weights(
    folder: Path,
    rows: list[dict[str, str]],
    speaker: str,
    opts: ProsodyOptions,
    floors: dict[str, float],
    draws: int = 1,
    candidates: tuple[str, ...] = CANDIDATES,
) -> Fit:
    """Weights from one speaker: z-score every candidate against the speaker's neutral baseline
    (split halves) under each training condition; keep the candidates whose univariate AUC angry
    vs neutral is at least MIN_UNIVARIATE_AUC under every condition (same direction); ridge
    logistic regression angry (1) vs neutral (0) on the pooled conditions, dropping features
    whose weight turns against their own direction; weights = slopes / sum(|slopes|)."""
    rows = [r for r in rows if r["speaker"] == speaker]
    fl = tuple(floors.get(f, 0.0) for f in candidates)
    zs, ys, conds = [], [], []
    for cond in FIT_CONDITIONS:
        for d in range(draws):
            df = extract(folder, rows, cond, FIT_SEED_OFFSET + d, opts)
            z = split_zscores(df, df, candidates, fl)
            keep = df["emotion"].isin(["angry", "neutral"]).to_numpy()
            zs.append(z[keep])
            ys.append((df["emotion"][keep] == "angry").to_numpy(dtype=float))
            conds += [cond] * int(keep.sum())
    z, y, conds = np.vstack(zs), np.concatenate(ys), np.asarray(conds)
    uni = {f: auc(z[y == 1, j], z[y == 0, j]) for j, f in enumerate(candidates)}
    # robust to the channel: the feature must separate angry from neutral, in its pooled
    # direction, under every training condition on its own
    worst = {}
    for j, f in enumerate(candidates):
        sign = 1.0 if uni[f] >= 0.5 else -1.0
        worst[f] = min(
            auc(sign * z[(y == 1) & (conds == c), j], sign * z[(y == 0) & (conds == c), j])
            for c in FIT_CONDITIONS
        )
    chosen = tuple(f for f in candidates if worst[f] >= MIN_UNIVARIATE_AUC)
    if not chosen:
        chosen = (max(worst, key=lambda f: worst[f]),)
    # a feature whose fitted weight points against its own univariate direction is only
    # trading off against a correlated one: drop it and refit, so every weight reads as
    # "more of this = more agitated" (or less, for a negative univariate direction)
    while True:
        cols = [candidates.index(f) for f in chosen]
        w = logistic(z[:, cols], y)
        wrong = [f for f, v in zip(chosen, w, strict=True) if np.sign(v) != np.sign(uni[f] - 0.5)]
        if not wrong or len(chosen) == 1:
            break
        chosen = tuple(f for f in chosen if f not in wrong)
    w = w / np.abs(w).sum()
    return Fit(chosen, tuple(float(v) for v in w), uni, worst)


def spec_of(fit: Fit, floors: dict[str, float], high: float = 1.0) -> AgitationSpec:
    return AgitationSpec(
        fit.features, fit.weights, tuple(floors.get(f, 0.0) for f in fit.features), high, 1
    )


# --- evaluation --------------------------------------------------------------------------------


def score_split(scored: pd.DataFrame, base: pd.DataFrame, spec: AgitationSpec) -> np.ndarray:
    z = split_zscores(scored, base, spec.features, spec.std_floors)
    w = np.asarray(spec.weights)
    ok = np.isfinite(z)
    den = np.where(ok, np.abs(w), 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.where(ok, z * w, 0).sum(axis=1) / den, np.nan)


def pair_metrics(df: pd.DataFrame, s: np.ndarray) -> tuple[float, float]:
    d = df.assign(score=s)
    ang = d[d.emotion == "angry"].set_index("sentence")["score"]
    neu = d[d.emotion == "neutral"].set_index("sentence")["score"]
    common = ang.index.intersection(neu.index)
    acc = float((ang[common] > neu[common]).mean()) if len(common) else float("nan")
    return acc, auc(ang.to_numpy(), neu.to_numpy())


def evaluate(
    folder: Path,
    rows: list[dict[str, str]],
    specs: dict[str, AgitationSpec],
    opts: ProsodyOptions,
    draws: int,
    conditions: tuple[str, ...] = CONDITIONS,
) -> pd.DataFrame:
    """One row per condition, held-out speaker, draw, emotion: mean score; plus acc and AUC.
    `specs[speaker]` is the spec to score that speaker with (fitted on the other one)."""
    out = []
    for cond in conditions:
        for d in range(draws):
            if cond == "mismatch":
                scored = extract(folder, rows, "combined", d, opts)
                base = extract(folder, rows, "clean", d, opts)
            else:
                scored = base = extract(folder, rows, cond, d, opts)
            for spk, spec in specs.items():
                m = (scored["speaker"] == spk).to_numpy()
                s = score_split(
                    scored[m].reset_index(drop=True), base[m].reset_index(drop=True), spec
                )
                g = scored[m].reset_index(drop=True)
                acc, a = pair_metrics(g, s)
                row = {"condition": cond, "speaker": spk, "draw": d, "pair_acc": acc, "auc": a}
                for e in EMOTIONS:
                    row[e] = (
                        float(np.nanmean(s[(g.emotion == e).to_numpy()]))
                        if (g.emotion == e).any()
                        else np.nan
                    )
                out.append(row)
    return pd.DataFrame(out)


def print_tables(res: pd.DataFrame, title: str) -> None:
    print(f"\n### {title}\n")
    print(
        "| condition | held-out speaker | pairwise acc. angry > neutral (mean / min over draws) "
        "| AUC angry vs neutral (mean / min) |"
    )
    print("|---|---|---|---|")
    for (cond, spk), g in res.groupby(["condition", "speaker"], sort=False):
        print(
            f"| {cond} | {spk} | {g.pair_acc.mean():.2f} / {g.pair_acc.min():.2f} "
            f"| {g.auc.mean():.3f} / {g.auc.min():.3f} |"
        )
    print(
        "\nMean agitation per emotion (z units vs the speaker's own neutral baseline; "
        "arousal: angry/surprise/happy high, sad/neutral low)\n"
    )
    print("| condition | speaker | " + " | ".join(EMOTIONS) + " |")
    print("|---|---|" + "---|" * len(EMOTIONS))
    for (cond, spk), g in res.groupby(["condition", "speaker"], sort=False):
        print(f"| {cond} | {spk} | " + " | ".join(f"{g[e].mean():+.2f}" for e in EMOTIONS) + " |")


# --- agitation.toml ----------------------------------------------------------------------------


OPTION_NOTES = {
    "sample_rate": "rate of the clips handed in",
    "work_rate": "every clip is analysed at the telephone rate, 16 kHz and 8 kHz calls alike",
    "band_lo_hz": "telephone band: level and spectral figures use only 300-3400 Hz",
    "window_s": "YIN integration window and spectrum frame",
    "hop_s": "",
    "fmin_hz": "pitch search range",
    "fmax_hz": "angry female speech in CASIA passes 500 Hz",
    "yin_threshold": "YIN: first dip of the normalised difference below this is the period",
    "max_aperiodicity": (
        "voiced: aperiodicity (mean of band and envelope) below this; keeps the voiced share of"
        " clean speech that 0.3 on the band alone had (LOSO-screened)"
    ),
    "active_range_db": "speech frames: within this of the clip's 95th percentile level ...",
    "floor_percentile": "noise floor: this percentile of each bin's power over the clip's frames",
    "floor_margin_db": "... and this far above the noise floor",
    "min_snr_db": "a clip without a pause: its floor is assumed at least this far below the loud level",
    "pitch_highpass_hz": "the pitch tracker's input high-pass (300 Hz: fewer channel differences, more errors)",
    "pitch_span_st": "voiced frames more than this above the clip's 10th percentile pitch are harmonic locks",
    "min_voiced_frames": "fewer voiced frames: no pitch or spectral figures (None)",
    "envelope_lowpass_hz": "pitch path: the squared band signal (fundamental restored) is band-passed up to this",
    "octave_cost": "pitch path: cost per octave down, so ties go to the shorter period (Praat's default)",
    "octave_jump_cost": "pitch path: cost per octave between neighbouring frames (Praat's default)",
}


def render_toml(
    opts: ProsodyOptions,
    fit: Fit,
    folds: dict[str, Fit],
    floors: dict[str, float],
    high: float,
    min_baseline: int,
    note: str,
) -> str:
    lines = [
        "# Agitation: which voice features, their weights and baseline floors.",
        "# Written by scripts/validate_agitation.py --fit --write; the method is in its docstring",
        '# and in docs/METRICS.md ("Agitation"). Do not tune by hand: refit and re-validate.',
        "#",
        f"# {note}",
        "",
        "[prosody]  # pipeline.prosody.ProsodyOptions",
    ]
    for k, v in opts.__dict__.items():
        note = OPTION_NOTES.get(k, "")
        lines.append(f"{k} = {v!r}" + (f"  # {note}" if note else ""))
    lines += [
        "",
        "[agitation]",
        "# Utterance agitation = sum(weight * z) / sum(|weight|) over the features present, with",
        "# z = (value - baseline mean) / max(baseline std, std_floor) against the agent's own early",
        "# utterances. Weights: ridge logistic regression angry vs neutral on baseline z-scores, one",
        "# speaker at a time, over clean / telephone / +-10 dB gain / 20 and 10 dB noise / combined",
        "# draws; the shipped weights are the mean of the single-speaker fits (each normalised).",
        "# std_floor: what the recording alone does to the feature: std of the same clip's value",
        "# over those six conditions, median over clips (a smaller baseline spread is the channel).",
        f"high = {high}  # held-out neutral clips above this: about 10% (LOSO, combined condition)",
        f"min_baseline_utterances = {min_baseline}",
        "",
        "[agitation.features]",
    ]
    for f, w in zip(fit.features, fit.weights, strict=True):
        per = ", ".join(
            f"{spk} {dict(zip(fo.features, fo.weights, strict=True)).get(f, 0.0):+.3f}"
            for spk, fo in folds.items()
        )
        uni = ", ".join(f"{spk} {fo.univariate_auc[f]:.2f}" for spk, fo in folds.items())
        lines.append(
            f"{f} = {{ weight = {w:.4f}, std_floor = {floors[f]:.4g} }}  # fits: {per}; AUC alone: {uni}"
        )
    return "\n".join(lines) + "\n"


def mean_fit(folds: dict[str, Fit]) -> Fit:
    feats = [f for f in CANDIDATES if any(f in fo.features for fo in folds.values())]
    w = np.array(
        [
            np.mean(
                [
                    dict(zip(fo.features, fo.weights, strict=True)).get(f, 0.0)
                    for fo in folds.values()
                ]
            )
            for f in feats
        ]
    )
    keep = np.abs(w) > 1e-6
    w = w[keep] / np.abs(w[keep]).sum()
    uni = {f: float(np.mean([fo.univariate_auc[f] for fo in folds.values()])) for f in CANDIDATES}
    worst = {f: float(min(fo.worst_auc[f] for fo in folds.values())) for f in CANDIDATES}
    return Fit(
        tuple(f for f, k in zip(feats, keep, strict=True) if k),
        tuple(float(v) for v in w),
        uni,
        worst,
    )


# --- compatibility with tests/test_agitation_eval.py ------------------------------------------


def features(
    folder: Path,
    emotions: tuple[str, ...] | None = None,
    max_sentences: int | None = None,
    condition: str = "clean",
) -> pd.DataFrame:
    """Prosody per clip as the pipeline's utterance rows (agent_id, cohort, call_id, ...)."""
    opts, _ = load_agitation(AGITATION_FILE)
    rows = load_manifest(folder, emotions, max_sentences)
    df = extract(folder, rows, condition, 0, opts).copy()
    df["agent_id"] = df["speaker"]
    df["call_id"] = df["speaker"] + "-" + df["emotion"] + "-" + df["sentence"]
    df["utterance_id"] = 0
    df["start_s"], df["end_s"] = 0.0, df["duration_s"]
    df["cohort"] = np.where(df["emotion"] == "neutral", "early", "current")
    return df


def score(df: pd.DataFrame) -> pd.DataFrame:
    """Agitation per clip with the shipped weights against each speaker's early (neutral) clips,
    the way the pipeline scores agents (every neutral clip in the baseline: in-sample)."""
    _, spec = load_agitation(AGITATION_FILE)
    out = df.copy()
    out["agitation"] = np.nan
    for _, g in df.groupby("agent_id"):
        base = P.fit_baseline(
            P.feature_matrix(g[g["cohort"] == "early"].to_dict("records"), spec), spec
        )
        out.loc[g.index, "agitation"] = P.agitation(
            P.feature_matrix(g.to_dict("records"), spec), base, spec
        )
    return out


# --- pitch tracker vs pYIN ---------------------------------------------------------------------


def pitch_check(folder: Path, rows: list[dict[str, str]], opts: ProsodyOptions, n: int) -> None:
    """Our pitch tracker (YIN on the 8 kHz band and on its envelope, octave path) against
    librosa's pYIN at 16 kHz on the same clips: frame agreement where both call the frame
    voiced, gross errors (> 20 % off), voicing agreement, clip median pitch; and CPU time per
    audio minute. Run it on one core (taskset -c 0) for per-core figures."""
    import warnings

    import librosa

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    pick = rows[:: max(1, len(rows) // n)][:n]
    clips = [load_clip(folder, r["path"]) for r in pick]
    minutes = sum(len(c) for c in clips) / SR / 60
    hop = int(round(opts.hop_s * SR))

    same = {
        "fmin": opts.fmin_hz,
        "fmax": opts.fmax_hz,
        "sr": SR,
        "frame_length": 1024,
        "hop_length": hop,
        "center": False,
    }

    def pyin(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f, v, _ = librosa.pyin(x, **same)
        return f, v

    def yin16(x: np.ndarray) -> np.ndarray:
        return librosa.yin(x, **same)

    pyin(clips[0]), yin16(clips[0]), P.prosody(clips[0], opts)  # warm up (numba, caches)
    timings = {}
    t = time.process_time()
    ref = [pyin(x) for x in clips]
    timings["librosa.pyin 16 kHz"] = time.process_time() - t
    t = time.process_time()
    for x in clips:
        yin16(x)
    timings["librosa.yin 16 kHz (pitch only)"] = time.process_time() - t
    t = time.process_time()
    for x in clips:
        P.pitch_track(x, opts)
    timings["ours: YIN on band + envelope, octave path, voicing (pitch only)"] = (
        time.process_time() - t
    )
    t = time.process_time()
    for x in clips:
        P.prosody(x, opts)
    timings["ours: every prosody feature"] = time.process_time() - t
    print(f"\n### Speed ({len(clips)} clips, {minutes:.2f} audio minutes, CPU time)\n")
    print("| method | s per audio minute | x realtime |")
    print("|---|---|---|")
    for k, v in timings.items():
        print(f"| {k} | {v / minutes:.3f} | {60 * minutes / v:.0f} |")

    print("\n### Agreement with pYIN on the clean 16 kHz clips\n")
    print(
        "| our input | frames within 1 st (both voiced) | gross errors > 20 % | voicing precision / recall "
        "| clip median pitch within 1 st | median abs. diff (st) |"
    )
    print("|---|---|---|---|---|---|")
    for label, cond in (
        ("clean", "clean"),
        ("telephone (band, 8 kHz, mu-law)", "telephone"),
        ("combined (telephone + 20 dB noise + gain)", "combined"),
    ):
        within, gross, tp, fp, fn, med = [], [], 0, 0, 0, []
        for r, x, (f_ref, v_ref) in zip(pick, clips, ref, strict=True):
            f_ours, times = P.pitch_track(perturb(x, cond, _rng(cond, 0, r["path"])), opts)
            # pyin frame i (center=False) is centred at (i * hop + 512) / SR
            t_ref = (np.arange(len(f_ref)) * hop + 512) / SR
            idx = np.clip(np.searchsorted(times, t_ref), 0, max(len(times) - 1, 0))
            fo = f_ours[idx] if len(f_ours) else np.full(len(f_ref), np.nan)
            vo = np.isfinite(fo)
            tp += int((vo & v_ref).sum())
            fp += int((vo & ~v_ref).sum())
            fn += int((~vo & v_ref).sum())
            both = vo & v_ref & np.isfinite(f_ref)
            d = 12 * np.log2(fo[both] / f_ref[both])
            within += list(np.abs(d) < 1)
            gross += list(np.abs(d) > 12 * np.log2(1.2))
            if v_ref.any() and vo.any():
                med.append(12 * np.log2(np.nanmedian(f_ours) / np.median(f_ref[v_ref])))
        med_a = np.abs(np.asarray(med))
        print(
            f"| {label} | {np.mean(within):.1%} | {np.mean(gross):.1%} | {tp / max(tp + fp, 1):.2f} / "
            f"{tp / max(tp + fn, 1):.2f} | {np.mean(med_a < 1):.0%} | {np.median(med_a):.2f} |"
        )


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", type=Path, default=DEFAULT_EVAL)
    ap.add_argument("--limit", type=int, default=None, help="use only N sentences (quick run)")
    ap.add_argument(
        "--draws", type=int, default=3, help="independent perturbation draws per condition"
    )
    ap.add_argument(
        "--fit", action="store_true", help="fit the weights on each speaker and print them"
    )
    ap.add_argument("--speaker", default=None, help="with --fit: fit on this speaker only")
    ap.add_argument(
        "--write", action="store_true", help="with --fit: write pipeline/data/agitation.toml"
    )
    ap.add_argument(
        "--shipped",
        action="store_true",
        help="also score with the shipped weights (fitted on both speakers: in-sample)",
    )
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument(
        "--pitch-check",
        type=int,
        metavar="N",
        default=0,
        help="compare the pitch tracker with pYIN on N clips (agreement, speed) and stop",
    )
    args = ap.parse_args(argv)
    if not (args.eval / "manifest.tsv").is_file():
        print(f"no evaluation data at {args.eval}: skipped")
        return 0
    t0 = time.perf_counter()
    opts, shipped = load_agitation(AGITATION_FILE)
    rows = load_manifest(args.eval, max_sentences=args.limit)
    if args.pitch_check:
        pitch_check(args.eval, rows, opts, args.pitch_check)
        return 0
    speakers = sorted({r["speaker"] for r in rows})
    conditions = tuple(c for c in args.conditions.split(",") if c)
    floors = std_floors(args.eval, rows, opts)
    folds = {s: fit_weights(args.eval, rows, s, opts, floors) for s in speakers}
    for s, fo in folds.items():
        print(
            f"fit on {s}: "
            + ", ".join(f"{f} {w:+.3f}" for f, w in zip(fo.features, fo.weights, strict=True))
        )
        print(
            "   univariate AUC angry vs neutral: "
            + ", ".join(f"{f} {a:.2f}" for f, a in fo.univariate_auc.items())
        )
    if args.fit:
        if args.speaker:
            folds = {args.speaker: folds[args.speaker]}
        fit = mean_fit(folds)
        # high: 90th percentile of held-out neutral scores, LOSO, combined condition
        specs = (
            {s: spec_of(folds[o], floors) for s in speakers for o in speakers if o != s}
            if len(folds) > 1
            else {s: spec_of(fit, floors) for s in speakers}
        )
        neutral = []
        for d in range(args.draws):
            df = extract(args.eval, rows, "combined", d, opts)
            for s, spec in specs.items():
                m = (df["speaker"] == s).to_numpy()
                g = df[m].reset_index(drop=True)
                sc = score_split(g, g, spec)
                neutral.append(sc[(g.emotion == "neutral").to_numpy()])
        high = round(float(np.nanpercentile(np.concatenate(neutral), 90)) * 20) / 20
        note = (
            f"Fitted {time.strftime('%Y-%m-%d')} on {', '.join(folds)} ({len(rows)} clips of "
            f"{args.eval.name}).\n# A feature enters the fit when on its own it separates angry from "
            f"neutral with AUC >= {MIN_UNIVARIATE_AUC}\n# under every training condition."
        )
        text = render_toml(opts, fit, folds, floors, high, shipped.min_baseline_utterances, note)
        print(text)
        if args.write:
            AGITATION_FILE.write_text(text, encoding="utf-8")
            print(f"wrote {AGITATION_FILE}")
        return 0
    specs = {s: spec_of(folds[o], floors) for s in speakers for o in speakers if o != s}
    res = evaluate(args.eval, rows, specs, opts, args.draws, conditions)
    print_tables(res, "Leave one speaker out (weights fitted on the other speaker)")
    if args.shipped:
        res2 = evaluate(
            args.eval, rows, dict.fromkeys(speakers, shipped), opts, args.draws, conditions
        )
        print_tables(
            res2, "Shipped weights (pipeline/data/agitation.toml; fitted on both speakers)"
        )
    print(
        f"\n{len(rows)} clips, {args.draws} draws, {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
