"""The pitch tracker behind agitation (pipeline.prosody: YIN on the telephone band and on its
squared envelope, a path over candidate octaves): known answers on crafted signals whose
fundamental the telephone band removes."""

import numpy as np
import pytest
import scipy.signal

from pipeline.config import default_config
from pipeline.pitch import envelope, octave_path, to_band
from pipeline.prosody import pitch_track

SR = 16_000
OPTS = default_config().prosody
# the evaluation's telephone channel (scripts/validate_agitation.py): 300-3400 Hz band-pass
TELEPHONE = scipy.signal.butter(6, [300, 3400], btype="bandpass", fs=SR, output="sos")


def _voice(
    f0: np.ndarray | float,
    seconds: float = 1.0,
    odd: float = 1.0,
    formant_hz: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Harmonics k f0 at 1/k (odd ones scaled by `odd`), optionally shaped by one resonance
    (80 Hz wide), between two pauses, through the telephone band, with a little noise."""
    n = int(seconds * SR)
    f = np.broadcast_to(np.asarray(f0, dtype=float), (n,))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = np.zeros(n)
    for k in range(1, 40):
        gain = (odd if k % 2 else 1.0) / k
        x += np.where(k * f < 3800, gain * np.sin(k * phase), 0.0)
    if formant_hz:
        r, th = np.exp(-np.pi * 80 / SR), 2 * np.pi * formant_hz / SR
        x = scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], x)
    pad = np.zeros(int(0.2 * SR))
    x = np.concatenate([pad, 0.3 * x / np.abs(x).max(), pad])
    x = x + np.random.default_rng(seed).normal(0, 1e-4, len(x))
    return scipy.signal.sosfilt(TELEPHONE, x).astype(np.float32)


def _st(f: np.ndarray, ref: np.ndarray | float) -> np.ndarray:
    return 12 * np.log2(f / ref)


@pytest.mark.parametrize("f0", [90.0, 100.0, 110.0, 120.0])
def test_a_low_voice_without_its_fundamental_is_not_read_an_octave_up(f0):
    """Fundamental and second harmonic removed by the band, odd harmonics 10 dB down and the
    strongest partial a resonance on the 4th harmonic: plain YIN reads 2 or 4 x f0 here."""
    f, _ = pitch_track(_voice(f0, odd=0.3, formant_hz=4 * f0), OPTS)
    voiced = f[np.isfinite(f)]
    assert voiced.size >= 80  # of about 100 frames of tone
    assert np.median(voiced) == pytest.approx(f0, rel=0.02)
    assert np.mean(np.abs(_st(voiced, f0)) < 1) >= 0.95


@pytest.mark.parametrize("f0", [95.0, 115.0])
def test_a_low_voice_through_the_band_keeps_its_octave(f0):
    f, _ = pitch_track(_voice(f0, formant_hz=500.0), OPTS)
    voiced = f[np.isfinite(f)]
    assert voiced.size >= 80
    assert np.mean(np.abs(_st(voiced, f0)) < 1) >= 0.95


@pytest.mark.parametrize("f0", [520.0, 640.0, 690.0])
def test_a_high_voice_between_whole_sample_lags_is_not_halved(f0):
    """At 8 kHz these periods are 15.4, 12.5 and 11.6 samples: read on whole lags only, the
    dip at twice the period (nearer a whole lag) looks deeper than the true one."""
    f, _ = pitch_track(_voice(f0), OPTS)
    voiced = f[np.isfinite(f)]
    assert voiced.size >= 80
    assert np.median(voiced) == pytest.approx(f0, rel=0.02)
    assert np.mean(np.abs(_st(voiced, f0)) < 1) >= 0.95


def test_a_glide_is_followed_without_octave_jumps():
    """100 -> 200 Hz over 1.5 s through the band: every voiced frame near the true pitch."""
    seconds = 1.5
    t = np.arange(int(seconds * SR)) / SR
    truth = 100 * 2 ** (t / seconds)
    f, times = pitch_track(_voice(truth, seconds, odd=0.5, formant_hz=450.0), OPTS)
    ok = np.isfinite(f)
    assert ok.mean() > 0.75  # the clip has 0.2 s pauses either side
    expected = 100 * 2 ** ((times[ok] - 0.2) / seconds)
    assert np.all(np.abs(_st(f[ok], expected)) < 1)
    assert np.all(np.abs(np.diff(_st(f[ok], 100.0))) < 1)


@pytest.mark.parametrize(
    "x",
    [np.zeros(SR, np.float32), np.full(SR, 1e-9, np.float32)],
    ids=["zeros", "dc"],
)
def test_silence_is_unvoiced(x):
    f, _ = pitch_track(x, OPTS)
    assert not np.isfinite(f).any()


def test_white_noise_is_unvoiced():
    x = np.random.default_rng(7).normal(0, 0.05, SR).astype(np.float32)
    f, _ = pitch_track(x, OPTS)
    assert np.isfinite(f).mean() < 0.05


def test_the_envelope_restores_the_missing_fundamental():
    """Through the band the 100 Hz fundamental is 30 dB down; squared, the neighbouring
    harmonics beat at 100 Hz and it is the envelope's strongest component."""
    xb = to_band(_voice(100.0, odd=1.0, formant_hz=500.0), OPTS)
    mid = slice(len(xb) // 4, 3 * len(xb) // 4)

    def peak_hz(y: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(y[mid] * np.hanning(len(y[mid]))))
        freqs = np.fft.rfftfreq(len(y[mid]), 1 / OPTS.work_rate)
        keep = (freqs > 50) & (freqs < 1000)
        return float(freqs[keep][spec[keep].argmax()])

    assert peak_hz(xb) > 250  # the band signal: a harmonic above the band edge
    assert peak_hz(envelope(xb, OPTS)) == pytest.approx(100.0, abs=3.0)


def test_the_path_follows_neighbours_across_an_ambiguous_stretch():
    """Candidates per frame: (pitch in st, cost). The middle frames are a near tie that
    slightly favours the octave above; linked to their neighbours they stay on the voice's
    octave, unlinked each frame takes its own cheapest candidate."""
    st = np.array([[0.0, 12.0]] * 6)
    cost = np.array([[0.05, 0.30]] * 2 + [[0.12, 0.10]] * 2 + [[0.05, 0.30]] * 2)
    linked = np.array([False, True, True, True, True, True])
    assert octave_path(st, cost, linked, 0.35).tolist() == [0] * 6
    alone = octave_path(st, cost, np.zeros(6, bool), 0.35).tolist()
    assert alone == [0, 0, 1, 1, 0, 0]


def test_the_path_handles_one_frame_and_none():
    assert octave_path(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, bool), 0.35).size == 0
    one = octave_path(np.array([[0.0, 12.0]]), np.array([[0.3, 0.1]]), np.array([False]), 0.35)
    assert one.tolist() == [1]
