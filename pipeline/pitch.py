"""Pitch through the telephone band: YIN on the band signal and on its squared envelope, and a
path over candidate periods and octaves (pipeline.prosody builds the voice features on it).

The telephone band removes a voice's fundamental, so YIN's first dip often falls on a harmonic,
an octave or two too high. The squared envelope restores the fundamental (neighbouring
harmonics beat at f0; Zahorian & Hu's YAAPT), and Boersma's path finder (Praat) chooses among
the candidates with an octave-jump cost between neighbouring frames (`track`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal
import soxr

from pipeline.config import ProsodyOptions


@dataclass(frozen=True)
class Plan:
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
    env_sos: np.ndarray  # band-pass pitch_highpass_hz - envelope_lowpass_hz of the squared signal


@lru_cache(maxsize=8)
def plan(o: ProsodyOptions) -> Plan:
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
    env_sos = scipy.signal.butter(
        4,
        [o.pitch_highpass_hz, o.envelope_lowpass_hz],
        btype="bandpass",
        fs=o.work_rate,
        output="sos",
    )
    return Plan(
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
        env_sos=env_sos,
    )


def to_band(x: np.ndarray, o: ProsodyOptions) -> np.ndarray:
    """The clip at the working (telephone) rate, high-passed at `pitch_highpass_hz`."""
    x = np.asarray(x, dtype=np.float32)
    if o.sample_rate != o.work_rate:
        x = soxr.resample(x, o.sample_rate, o.work_rate, quality="HQ")
    return scipy.signal.sosfilt(plan(o).sos, x).astype(np.float32)


def envelope(xb: np.ndarray, o: ProsodyOptions) -> np.ndarray:
    """The band signal squared and band-passed (YAAPT's nonlinear processing, Zahorian & Hu
    2008): neighbouring harmonics k f0 and (k+1) f0 beat at f0, so the fundamental that the
    telephone band removed is back in the envelope, while a lone partial only doubles."""
    y = np.asarray(xb, dtype=np.float32) ** 2
    return scipy.signal.sosfilt(plan(o).env_sos, y).astype(np.float32)


def cmnd(x: np.ndarray, idx: np.ndarray, p: Plan) -> np.ndarray:
    """YIN's cumulative mean normalised difference (de Cheveigne & Kawahara 2002) of the frames
    `idx` (hop units; length win + tau_max + 1) of signal `x`, on a half-sample lag grid:
    column j is lag j / 2, up to tau_max + 1/2. About 1 - the normalised autocorrelation, 0
    where the frame repeats exactly. The products come from an FFT cross-correlation, read at
    half samples from the zero-padded spectrum (band-limited interpolation: at 8 kHz a high
    voice's period is 11-16 samples, and the nearest whole lag can miss its dip by enough to
    make the octave below look more periodic); the window energies from one running sum."""
    w, tmax = p.win, p.tau_max
    frames = frame_view(x, w + tmax + 1, p.hop)[idx]
    fa = scipy.fft.rfft(frames[:, :w], p.nfft_yin, axis=1)
    fb = scipy.fft.rfft(frames, p.nfft_yin, axis=1)
    width = 2 * tmax + 2
    r = 2 * scipy.fft.irfft(np.conj(fa) * fb, 2 * p.nfft_yin, axis=1)[:, :width]
    run = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    at = idx[:, None] * p.hop + np.arange(tmax + 2)
    e_whole = run[at + w] - run[at]  # energy of the window shifted by 0 .. tmax + 1 samples
    e_tau = np.empty_like(r)
    e_tau[:, 0::2] = e_whole[:, :-1]
    e_tau[:, 1::2] = 0.5 * (e_whole[:, :-1] + e_whole[:, 1:])
    d = np.maximum(e_tau[:, :1] + e_tau - 2 * r, 0.0)
    cum = np.cumsum(d[:, 1:], axis=1)
    out = np.ones_like(d)
    out[:, 1:] = d[:, 1:] * np.arange(1, width) / np.maximum(cum, 1e-12)
    return out


def _refine(c: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parabolic interpolation around column `col` of each row of a `cmnd`: (lag in samples,
    value) of the vertex."""
    rows = np.arange(len(c))
    y0, y1, y2 = c[rows, col - 1], c[rows, col], c[rows, col + 1]
    den = y0 - 2 * y1 + y2
    shift = np.clip(0.5 * (y0 - y2) / np.where(np.abs(den) > 1e-12, den, np.inf), -0.5, 0.5)
    return (col + shift) / 2, np.clip(y1 - 0.25 * (y0 - y2) * shift, 0.0, 1.0)


def yin_lag(c: np.ndarray, p: Plan, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """YIN's period (lag in samples) and aperiodicity of each row of a `cmnd`: the first dip
    below `threshold`, else the deepest, refined by parabolic interpolation."""
    lo, hi = 2 * p.tau_min, 2 * p.tau_max
    seg = c[:, lo : hi + 1]
    dip = (seg < threshold) & (seg <= c[:, lo + 1 : hi + 2]) & (seg <= c[:, lo - 1 : hi])
    col = np.where(dip.any(axis=1), dip.argmax(axis=1), seg.argmin(axis=1))
    return _refine(c, col + lo)


def _deepest(c: np.ndarray, p: Plan) -> np.ndarray:
    """Lag (samples) of each row's deepest dip of a `cmnd` in the pitch range."""
    return (c[:, 2 * p.tau_min : 2 * p.tau_max + 1].argmin(axis=1) + 2 * p.tau_min) / 2


def _dip_near(c: np.ndarray, lag: np.ndarray, p: Plan) -> tuple[np.ndarray, np.ndarray]:
    """The deepest point of each row of a `cmnd` within one sample of `lag` (samples),
    refined: (lag, value); value inf where `lag` is outside the pitch range."""
    lo, hi = 2 * p.tau_min, 2 * p.tau_max
    inside = (lag >= p.tau_min - 0.25) & (lag <= p.tau_max + 0.25)
    near = np.clip(np.round(2 * lag).astype(int)[:, None] + np.arange(-2, 3), lo, hi)
    rows = np.arange(len(c))
    lag, value = _refine(c, near[rows, c[rows[:, None], near].argmin(axis=1)])
    return lag, np.where(inside, value, np.inf)


def octave_path(
    st: np.ndarray, cost: np.ndarray, linked: np.ndarray, jump_cost: float
) -> np.ndarray:
    """Viterbi over pitch candidates (Boersma 1993's path finder): per frame a candidate
    index minimising the sum of the candidates' own costs plus `jump_cost` per octave of
    pitch change between consecutive frames where `linked` (frame i follows i-1 directly).

    st, cost: (frames, candidates) pitch in semitones and cost (inf: unavailable)."""
    n, k = st.shape
    if n == 0:
        return np.zeros(0, dtype=int)
    per_st = jump_cost / 12.0
    pitch, own = st.tolist(), cost.tolist()
    total, back = own[0], []
    cands = range(k)
    for i in range(1, n):  # plain floats: a few µs per frame, faster than numpy at this size
        s, c = pitch[i], own[i]
        if linked[i]:
            prev_s, came, new = pitch[i - 1], [], []
            for a in cands:
                best, arg = math.inf, 0
                for b in cands:
                    v = total[b] + per_st * abs(s[a] - prev_s[b])
                    if v < best:
                        best, arg = v, b
                came.append(arg)
                new.append(best + c[a])
        else:
            best = min(total)
            came = [total.index(best)] * k
            new = [best + c[a] for a in cands]
        back.append(came)
        total = new
    j = total.index(min(total))
    out = [j]
    for came in reversed(back):
        j = came[j]
        out.append(j)
    return np.asarray(out[::-1])


def track(
    band: np.ndarray, env: np.ndarray, linked: np.ndarray, p: Plan, o: ProsodyOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Pitch path over candidate frames: period (lag in samples) and aperiodicity per frame,
    from the frames' `cmnd` of the band signal and of its `envelope`; `linked[i]`: frame i
    directly follows frame i-1.

    Through the telephone band a voice's fundamental is gone, and YIN's first dip often falls
    at half the period (the second harmonic), an octave too high. So every candidate period is
    judged on the mean of the band's and the envelope's normalised difference (a voice is
    periodic in both; the caller takes that mean as the voicing aperiodicity); the candidates
    are YIN's pick on the band signal and the deepest dip of that mean, each with its octaves
    (half and double the lag); the path trades that aperiodicity against `octave_jump_cost` per
    octave of pitch change between neighbouring frames, plus `octave_cost` per octave down so
    that a perfectly periodic frame keeps the shorter period (Boersma's path finder in Praat,
    with its default costs, on these candidates)."""
    both = 0.5 * (band + env)
    picks = (yin_lag(band, p, o.yin_threshold)[0], _deepest(both, p))
    lags, costs = [], []
    for pick in picks:
        for factor in (0.5, 1.0, 2.0):
            lag, cost = _dip_near(both, pick * factor, p)
            lags.append(lag)
            costs.append(cost)
    lag, cost = np.stack(lags, axis=1), np.stack(costs, axis=1)
    prior = o.octave_cost * np.log2(lag / p.tau_min)
    k = octave_path(-12 * np.log2(lag), cost + prior, linked, o.octave_jump_cost)
    rows = np.arange(len(lag))
    return lag[rows, k], cost[rows, k]


def frame_view(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    if len(x) < length:
        return np.empty((0, length), dtype=x.dtype)
    return np.lib.stride_tricks.sliding_window_view(x, length)[::hop]
