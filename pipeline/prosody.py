"""Per-utterance voice features for agitation that do not depend on how a call was recorded.

Every clip is first reduced to the telephone band (8 kHz, 300-3400 Hz), so a 16 kHz early call and
an 8 kHz current call are measured on the same footing, and every feature is a ratio or a
difference of levels inside the clip (or against the clip's or the channel's noise floor), so
the recording gain cancels by construction:

- pitch: YIN at 8 kHz (own vectorised implementation; its aperiodicity gives the voicing
  decision and a harmonics-to-noise ratio), median, 90th percentile, spread and velocity in
  semitones; about 800x realtime per core against pYIN's 7x, see validate_agitation.py
  --pitch-check;
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
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal
import soxr

from pipeline.config import AgitationSpec, ProsodyOptions


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


@dataclass(frozen=True)
class _Plan:
    win: int
    hop: int
    tau_min: int
    tau_max: int
    nfft_yin: int
    nfft: int  # spectrum
    window: np.ndarray
    freqs: np.ndarray
    band: np.ndarray  # bool over spectrum bins: band_lo_hz - band_hi_hz
    low: np.ndarray  # band_lo_hz - 1 kHz
    high: np.ndarray  # 1 kHz - band_hi_hz
    h_low: np.ndarray  # band_lo_hz - 2 kHz
    h_high: np.ndarray  # 2 kHz - band_hi_hz
    slope_proj: np.ndarray  # least-squares slope of dB over band bins, per kHz
    sos: np.ndarray  # high-pass at pitch_highpass_hz


@lru_cache(maxsize=8)
def _plan(o: ProsodyOptions) -> _Plan:
    win = int(round(o.window_s * o.work_rate))
    hop = int(round(o.hop_s * o.work_rate))
    tau_min = max(2, int(math.floor(o.work_rate / o.fmax_hz)))
    tau_max = int(math.ceil(o.work_rate / o.fmin_hz))
    nfft = int(scipy.fft.next_fast_len(win))
    freqs = np.fft.rfftfreq(nfft, 1 / o.work_rate)
    band = (freqs >= o.band_lo_hz) & (freqs <= o.band_hi_hz)
    fb = freqs[band] / 1000.0
    proj = (fb - fb.mean()) / ((fb - fb.mean()) ** 2).sum()
    sos = scipy.signal.butter(
        4, o.pitch_highpass_hz, btype="highpass", fs=o.work_rate, output="sos"
    )
    return _Plan(
        win=win,
        hop=hop,
        tau_min=tau_min,
        tau_max=tau_max,
        nfft_yin=int(scipy.fft.next_fast_len(2 * win + tau_max + 1)),
        nfft=nfft,
        window=np.hanning(win + 2)[1:-1].astype(np.float32),
        freqs=freqs.astype(np.float32),
        band=band,
        low=(freqs >= o.band_lo_hz) & (freqs < 1000),
        high=(freqs >= 1000) & (freqs <= o.band_hi_hz),
        h_low=(freqs >= o.band_lo_hz) & (freqs < 2000),
        h_high=(freqs >= 2000) & (freqs <= o.band_hi_hz),
        slope_proj=proj.astype(np.float32),
        sos=sos,
    )


def to_band(x: np.ndarray, o: ProsodyOptions) -> np.ndarray:
    """The clip at the working (telephone) rate, high-passed at `pitch_highpass_hz`."""
    x = np.asarray(x, dtype=np.float32)
    if o.sample_rate != o.work_rate:
        x = soxr.resample(x, o.sample_rate, o.work_rate, quality="HQ")
    return scipy.signal.sosfilt(_plan(o).sos, x).astype(np.float32)


def yin(frames: np.ndarray, p: _Plan, threshold: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Pitch (Hz) and aperiodicity (0 = perfectly periodic) of each frame (length win + tau_max + 1).

    de Cheveigne & Kawahara (2002): difference function via FFT cross-correlation, cumulative
    mean normalisation, first dip below `threshold` (else the deepest), parabolic interpolation.
    """
    w, tmax = p.win, p.tau_max
    fa = scipy.fft.rfft(frames[:, :w], p.nfft_yin, axis=1)
    fb = scipy.fft.rfft(frames, p.nfft_yin, axis=1)
    r = scipy.fft.irfft(np.conj(fa) * fb, p.nfft_yin, axis=1)[:, : tmax + 2]
    sq = np.cumsum(np.pad(frames.astype(np.float64) ** 2, ((0, 0), (1, 0))), axis=1)
    lags = np.arange(tmax + 2)
    e_tau = sq[:, lags + w] - sq[:, lags]
    d = np.maximum(e_tau[:, :1] + e_tau - 2 * r, 0.0)
    cum = np.cumsum(d[:, 1:], axis=1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * lags[1:] / np.maximum(cum, 1e-12)
    seg = cmnd[:, p.tau_min : tmax + 1]
    nxt = cmnd[:, p.tau_min + 1 : tmax + 2]
    prv = cmnd[:, p.tau_min - 1 : tmax]
    dip = (seg < threshold) & (seg <= nxt) & (seg <= prv)
    idx = np.where(dip.any(axis=1), dip.argmax(axis=1), seg.argmin(axis=1))
    rows = np.arange(len(seg))
    tau = idx + p.tau_min
    y0, y1, y2 = cmnd[rows, tau - 1], cmnd[rows, tau], cmnd[rows, tau + 1]
    den = y0 - 2 * y1 + y2
    shift = np.clip(0.5 * (y0 - y2) / np.where(np.abs(den) > 1e-12, den, np.inf), -0.5, 0.5)
    return (rate / (tau + shift)).astype(np.float32), np.clip(y1, 0.0, 1.0).astype(np.float32)


def _frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    if len(x) < length:
        return np.empty((0, length), dtype=x.dtype)
    return np.lib.stride_tricks.sliding_window_view(x, length)[::hop]


def _cap_floor(floor: np.ndarray, p: _Plan, max_db: float) -> tuple[np.ndarray, float]:
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
    f0: np.ndarray  # Hz, every frame
    aperiodicity: np.ndarray
    voiced: np.ndarray


def analyse(x: np.ndarray, o: ProsodyOptions, floor: np.ndarray | None = None) -> Frames | None:
    """Telephone-band frames, noise floor, activity, pitch and voicing of one clip; None when
    the clip is too short or digitally silent."""
    p = _plan(o)
    if len(x) * o.work_rate < (p.win + p.tau_max + 1) * o.sample_rate:
        return None
    fr = _frames(to_band(x, o), p.win + p.tau_max + 1, p.hop)
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
    f0, aper = yin(fr, p, o.yin_threshold, o.work_rate)
    voiced = active & (aper < o.max_aperiodicity) & (f0 >= o.fmin_hz) & (f0 <= o.fmax_hz)
    if voiced.any():
        # Through a telephone band a low voice's strongest harmonic (300-450 Hz, just above
        # the band edge) passes for the pitch on weak frames, 2-4x the true f0, and YIN locks
        # onto it with a low aperiodicity: only the clip's pitch distribution gives it away.
        # Voiced frames more than pitch_span_st above the clip's 10th percentile are dropped.
        st = 12 * np.log2(np.maximum(f0, 1.0))
        voiced &= st <= _pct(st[voiced], 10) + o.pitch_span_st
    return Frames(power, level, floor, floor_db, active, f0, aper, voiced)


def noise_floor(x: np.ndarray, o: ProsodyOptions) -> np.ndarray | None:
    """Per-bin noise power of a clip or a whole channel (the `floor_percentile` over frames),
    for `prosody(..., floor=...)` when the channel's floor is better known than the clip's."""
    p = _plan(o)
    if len(x) * o.work_rate < p.win * o.sample_rate:
        return None
    fr = _frames(to_band(x, o), p.win, p.hop)
    power = np.abs(scipy.fft.rfft(fr * p.window, p.nfft, axis=1)) ** 2
    return np.percentile(power, o.floor_percentile, axis=0).astype(np.float32)


def pitch_track(x: np.ndarray, o: ProsodyOptions) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pitch (Hz, NaN where unvoiced) and frame centre times (s)."""
    a = analyse(x, o)
    if a is None:
        return np.empty(0, np.float32), np.empty(0)
    p = _plan(o)
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
    p = _plan(o)
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
