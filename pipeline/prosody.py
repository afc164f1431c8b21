"""Per-utterance voice features for agitation that do not depend on how a call was recorded.

Every clip is first reduced to the telephone band (8 kHz, 300-3400 Hz), so a 16 kHz early call and
an 8 kHz current call are measured on the same footing, and every feature is a ratio or a
difference of levels inside the clip (or against the clip's or the channel's noise floor), so
the recording gain cancels by construction:

- pitch: YIN at 8 kHz (own vectorised implementation) on the band signal and on its squared
  envelope, where the fundamental the telephone band removed is restored; a path over their
  candidate periods and octaves fixes YIN's octave jumps (`track`); median, 90th percentile,
  spread and velocity in semitones; harmonics-to-noise ratio from YIN's aperiodicity; several
  hundred times realtime per core against pYIN's 7x, see validate_agitation.py --pitch-check;
- spectral balance of voiced frames after subtracting the noise floor (alpha ratio,
  Hammarberg index, centroid, slope);
- level dynamics and level above the noise floor (dB), share of voiced frames.

All are candidates; which ones make agitation, with which weights and baseline floors, is
measured (scripts/validate_agitation.py --fit: leave-one-speaker-out on CASIA under telephone,
gain and noise perturbations) and kept in pipeline/data/agitation.toml. On CASIA only the pitch
level survives every channel condition (the spectral and level figures flip direction under
noise), so the fitted score is pitch-based.

Pure functions: the options travel as a frozen `ProsodyOptions`, the weights as an
`AgitationSpec`; `load_agitation` reads both from the data file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import scipy.fft
import scipy.signal

from pipeline.config import AgitationSpec, ProsodyOptions
from pipeline.pitch import Plan, cmnd, envelope, frame_view, plan, to_band, track, yin_lag


@dataclass(frozen=True)
class Prosody:
    """Figures of one utterance; None where the clip has too little voiced speech."""

    f0_median_st: float | None  # median pitch, semitones re 100 Hz
    f0_high_st: float | None  # 90th percentile pitch, semitones re 100 Hz
    f0_range_st: float | None  # 90th - 10th percentile of pitch, semitones
    f0_velocity_st_s: float | None  # median |pitch change| inside voiced runs, semitones / s
    hnr_db: float | None  # median harmonics-to-noise ratio of voiced frames (from YIN)
    alpha_ratio_db: float | None  # energy 1-3.4 kHz over 0.3-1 kHz, voiced frames, noise removed
    hammarberg_db: float | None  # peak level 0.3-2 kHz minus peak level 2-3.4 kHz
    centroid_hz: float | None  # spectral centroid in the band, voiced frames
    slope_db_khz: float | None  # regression slope of the band's log spectrum
    level_range_db: float | None  # 90th - 10th percentile of active frame level
    level_over_floor_db: float | None  # 90th percentile frame level above the noise floor
    voiced_share: float | None  # voiced frames / active frames
    duration_s: float  # of the clip handed in

    def as_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


FEATURES = tuple(f.name for f in fields(Prosody) if f.name != "duration_s")


# --- signal analysis -----------------------------------------------------------------------


def _cap_floor(floor: np.ndarray, p: Plan, max_db: float) -> tuple[np.ndarray, float]:
    """The floor, scaled down so that its band level is at most `max_db`: a clip without a
    pause has no measurable floor (its quietest frames are speech)."""
    floor = np.maximum(np.asarray(floor, dtype=np.float64), 1e-20)
    db = 10 * np.log10(float(floor[p.band].sum()))
    if db > max_db:
        floor = floor * 10 ** ((max_db - db) / 10)
        db = max_db
    return floor, db


def _pct(v: np.ndarray, q: float) -> float:
    return float(np.percentile(v, q))


@dataclass(frozen=True)
class Frames:
    """Frame-level analysis of one clip (hop `hop_s`)."""

    power: np.ndarray  # (n, bins) windowed power spectrum
    level_db: np.ndarray  # band level
    floor: np.ndarray  # per-bin noise power (capped)
    floor_db: float
    active: np.ndarray  # speech-level frames
    f0: np.ndarray  # Hz; NaN where not active
    aperiodicity: np.ndarray  # YIN's on the band signal (for the HNR); 1 where not active
    voiced: np.ndarray


def analyse(x: np.ndarray, o: ProsodyOptions, floor: np.ndarray | None = None) -> Frames | None:
    """Telephone-band frames, noise floor, activity, pitch and voicing of one clip; None when
    the clip is too short or digitally silent."""
    p = plan(o)
    length = p.win + p.tau_max + 1
    if len(x) * o.work_rate < length * o.sample_rate:
        return None
    xb = to_band(x, o)
    fr = frame_view(xb, length, p.hop)
    if len(fr) < o.min_voiced_frames:
        return None
    power = np.abs(scipy.fft.rfft(fr[:, : p.win] * p.window, p.nfft, axis=1)) ** 2
    band_power = power[:, p.band].sum(axis=1)
    if band_power.max() <= 1e-14:
        return None
    level = 10 * np.log10(np.maximum(band_power, 1e-20))
    loud = _pct(level, 95)
    if floor is None:
        floor = np.percentile(power, o.floor_percentile, axis=0)
    floor, floor_db = _cap_floor(floor, p, loud - o.min_snr_db)
    active = (level >= loud - o.active_range_db) & (level >= floor_db + o.floor_margin_db)
    # YIN only where there is speech: the rest is neither voiced nor measured
    f0 = np.full(len(fr), np.nan, dtype=np.float32)
    aper = np.ones(len(fr), dtype=np.float32)
    idx = np.flatnonzero(active)
    band = cmnd(xb, idx, p)
    lag, aper_a = yin_lag(band, p, o.yin_threshold)
    f0[idx], aper[idx] = o.work_rate / lag, aper_a
    voiced = active & (aper < o.max_aperiodicity) & (f0 >= o.fmin_hz) & (f0 <= o.fmax_hz)
    if voiced.any():
        # YIN's periodic frames are the candidates; the path over band and envelope decides
        # their period and whether they are periodic enough in both (see `track`)
        keep = voiced[idx]
        cand = idx[keep]
        linked = np.concatenate([[False], np.diff(cand) == 1])
        lag_v, aper_v = track(band[keep], cmnd(envelope(xb, o), cand, p), linked, p, o)
        f0[cand] = o.work_rate / lag_v
        voiced[cand] = (
            (aper_v < o.max_aperiodicity) & (f0[cand] >= o.fmin_hz) & (f0[cand] <= o.fmax_hz)
        )
    if voiced.any():
        # Frames far above the clip's low register are locks on a higher harmonic that no
        # neighbour corrected: voiced frames more than pitch_span_st above the clip's 10th
        # percentile are dropped.
        st = 12 * np.log2(np.maximum(f0, 1.0))
        voiced &= st <= _pct(st[voiced], 10) + o.pitch_span_st
    return Frames(power, level, floor, floor_db, active, f0, aper, voiced)


def noise_floor(x: np.ndarray, o: ProsodyOptions) -> np.ndarray | None:
    """Per-bin noise power of a clip or a whole channel (the `floor_percentile` over frames),
    for `prosody(..., floor=...)` when the channel's floor is better known than the clip's."""
    p = plan(o)
    if len(x) * o.work_rate < p.win * o.sample_rate:
        return None
    fr = frame_view(to_band(x, o), p.win, p.hop)
    power = np.abs(scipy.fft.rfft(fr * p.window, p.nfft, axis=1)) ** 2
    return np.percentile(power, o.floor_percentile, axis=0).astype(np.float32)


def pitch_track(x: np.ndarray, o: ProsodyOptions) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pitch (Hz, NaN where unvoiced) and frame centre times (s)."""
    a = analyse(x, o)
    if a is None:
        return np.empty(0, np.float32), np.empty(0)
    p = plan(o)
    times = (np.arange(len(a.f0)) * p.hop + p.win / 2) / o.work_rate
    return np.where(a.voiced, a.f0, np.nan).astype(np.float32), times


def prosody(x: np.ndarray, o: ProsodyOptions, floor: np.ndarray | None = None) -> Prosody:
    """Agitation features of one utterance (float32 mono at o.sample_rate).

    `floor`: per-bin noise power from `noise_floor` over the channel; by default the clip's own.
    """
    return voice(x, o, floor)[0]


def voice(
    x: np.ndarray, o: ProsodyOptions, floor: np.ndarray | None = None
) -> tuple[Prosody, np.ndarray]:
    """The features of `prosody` and the voiced frames' pitch in Hz, from one analysis."""
    duration = len(x) / o.sample_rate
    empty = Prosody(*([None] * len(FEATURES)), duration_s=duration)
    a = analyse(x, o, floor)
    if a is None or a.active.sum() < o.min_voiced_frames:
        return empty, np.empty(0, np.float32)
    p = plan(o)
    voiced, floor = a.voiced, a.floor
    floor_band = 10 ** (a.floor_db / 10)
    lev_act = a.level_db[a.active]
    clean_band = np.maximum(10 ** (lev_act / 10) - floor_band, floor_band * 1e-3)
    common = {
        "level_range_db": _pct(lev_act, 90) - _pct(lev_act, 10),
        "level_over_floor_db": _pct(10 * np.log10(clean_band), 90) - a.floor_db,
        "voiced_share": float(voiced.sum() / a.active.sum()),
        "duration_s": duration,
    }
    if voiced.sum() < o.min_voiced_frames:
        return Prosody(**{**empty.as_dict(), **common}), np.empty(0, np.float32)

    st_all = 12 * np.log2(np.maximum(a.f0, 1.0) / 100.0)
    st = st_all[voiced]
    both = voiced[1:] & voiced[:-1]
    steps = np.abs(np.diff(st_all))[both]
    velocity = float(np.median(steps)) / o.hop_s if steps.size else None
    ap = np.clip(a.aperiodicity[voiced], 1e-4, 1.0)
    hnr = 10 * np.log10(np.clip((1 - ap) / ap, 1e-4, 1e4))

    pv = np.maximum(a.power[voiced] - floor, floor * 1e-3)  # noise floor removed
    alpha = 10 * np.log10(pv[:, p.high].sum(axis=1) / pv[:, p.low].sum(axis=1))
    hamm = 10 * np.log10(pv[:, p.h_low].max(axis=1) / pv[:, p.h_high].max(axis=1))
    pb = pv[:, p.band]
    centroid = (pb * p.freqs[p.band]).sum(axis=1) / pb.sum(axis=1)
    slope = (10 * np.log10(pb)) @ p.slope_proj
    features = Prosody(
        f0_median_st=float(np.median(st)),
        f0_high_st=_pct(st, 90),
        f0_range_st=_pct(st, 90) - _pct(st, 10),
        f0_velocity_st_s=velocity,
        hnr_db=float(np.median(hnr)),
        alpha_ratio_db=float(np.median(alpha)),
        hammarberg_db=float(np.median(hamm)),
        centroid_hz=float(np.median(centroid)),
        slope_db_khz=float(np.median(slope)),
        **common,
    )
    return features, a.f0[voiced].astype(np.float32)


# --- agitation against the agent's own baseline ---------------------------------------------


@dataclass(frozen=True)
class Baseline:
    mean: tuple[float, ...]  # per spec feature; NaN where the baseline has no value
    std: tuple[float, ...]  # floored
    n: int


def feature_matrix(
    rows: Sequence[Mapping[str, float | None] | Prosody], spec: AgitationSpec
) -> np.ndarray:
    """(utterances x spec features) float array, NaN for missing values."""
    out = np.full((len(rows), len(spec.features)), np.nan)
    for i, r in enumerate(rows):
        d = r.as_dict() if isinstance(r, Prosody) else r
        for j, name in enumerate(spec.features):
            v = d.get(name)
            if v is not None:
                out[i, j] = float(v)
    return out


def fit_baseline(x: np.ndarray, spec: AgitationSpec) -> Baseline:
    """Mean and floored standard deviation of each feature over the agent's early utterances
    (rows of a `feature_matrix`)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    mean, std = [], []
    for j, floor in enumerate(spec.std_floors):
        v = x[:, j][np.isfinite(x[:, j])]
        mean.append(float(v.mean()) if v.size else math.nan)
        std.append(max(float(v.std()) if v.size > 1 else 0.0, floor))
    return Baseline(tuple(mean), tuple(std), int(len(x)))


def zscores(x: np.ndarray, base: Baseline) -> np.ndarray:
    return (np.asarray(x, dtype=float) - np.asarray(base.mean)) / np.asarray(base.std)


def agitation(x: np.ndarray, base: Baseline, spec: AgitationSpec) -> np.ndarray:
    """Per utterance: sum(w * z) / sum(|w|) over the features present (NaN when none is)."""
    z = zscores(np.atleast_2d(x), base)
    w = np.asarray(spec.weights, dtype=float)
    ok = np.isfinite(z)
    num = np.where(ok, z * w, 0.0).sum(axis=1)
    den = np.where(ok, np.abs(w), 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)
