"""Gain-free voice features behind agitation (pipeline.prosody): known answers on generated
signals, and gain robustness of the full score on a real CASIA clip (skipped without
../shared/eval)."""

import csv
import dataclasses

import numpy as np
import pytest
import soundfile as sf

from pipeline.config import AgitationSpec, default_config
from pipeline.prosody import (
    FEATURES,
    agitation,
    feature_matrix,
    fit_baseline,
    noise_floor,
    pitch_track,
    prosody,
)
from tests.conftest import EVAL, require

SR = 16_000
CONFIG = default_config()
OPTS, SPEC = CONFIG.prosody, CONFIG.agitation
EMOTION = EVAL / "emotion"


def _harmonic(
    f0: float,
    seconds: float,
    amp: float = 0.3,
    pad_s: float = 0.2,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """A voice-like harmonic tone (1/k harmonics) between two pauses, optional white noise."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12) if f0 * k < SR / 2)
    x = amp * x / np.abs(x).max()
    pad = np.zeros(int(pad_s * SR))
    x = np.concatenate([pad, x, pad])
    if noise:
        x = x + np.random.default_rng(seed).normal(0, noise, len(x))
    return x.astype(np.float32)


@pytest.mark.parametrize("f0", [80.0, 120.0, 220.0, 350.0, 500.0])
def test_pitch_of_a_harmonic_tone_within_2_percent(f0):
    pr = prosody(_harmonic(f0, 1.0, noise=1e-4), OPTS)
    assert 100 * 2 ** (pr.f0_median_st / 12) == pytest.approx(f0, rel=0.02)
    assert pr.f0_range_st < 0.3


def test_pitch_survives_the_telephone_band_and_noise():
    """120 Hz voice, fundamental and second harmonic removed (300-3400 Hz), 15 dB SNR."""
    import scipy.signal

    sos = scipy.signal.butter(6, [300, 3400], btype="bandpass", fs=SR, output="sos")
    x = scipy.signal.sosfilt(sos, _harmonic(120.0, 1.0)).astype(np.float32)
    x = x + np.random.default_rng(1).normal(0, np.sqrt(np.mean(x**2) / 10**1.5), len(x)).astype(
        np.float32
    )
    pr = prosody(x, OPTS)
    assert 100 * 2 ** (pr.f0_median_st / 12) == pytest.approx(120.0, rel=0.02)


def test_gliding_pitch_has_a_wide_range():
    t = np.arange(2 * SR) / SR
    f = 150 * 2 ** (t / 2)  # one octave over 2 s
    phase = 2 * np.pi * np.cumsum(f) / SR
    # with harmonics: the analysis lives in the telephone band (300-3400 Hz)
    x = (0.1 * sum(np.sin(k * phase) / k for k in range(1, 10))).astype(np.float32)
    assert prosody(x, OPTS).f0_range_st == pytest.approx(0.8 * 12, abs=1.0)
    f0, times = pitch_track(x, OPTS)
    assert np.isfinite(f0).mean() > 0.9 and np.all(np.diff(times) > 0)


def test_features_do_not_move_with_gain():
    x = _harmonic(180.0, 1.2, noise=0.003)
    quiet, loud = prosody(x, OPTS), prosody(x * 10 ** (10 / 20), OPTS)  # +10 dB
    for name in FEATURES:
        a, b = getattr(quiet, name), getattr(loud, name)
        assert a is not None and b is not None, name
        assert b == pytest.approx(a, rel=1e-3, abs=1e-3), name


def test_level_over_the_noise_floor_tracks_the_snr():
    """A steady tone 30 dB and 15 dB above white noise: level over floor follows the SNR
    (measured in the telephone band), whatever the absolute level."""
    tone = _harmonic(200.0, 1.5)
    band_power = np.mean(tone[tone != 0] ** 2)
    res = {}
    for snr in (30.0, 15.0):
        sigma = np.sqrt(band_power / 10 ** (snr / 10))
        for gain_db in (0.0, -20.0):
            x = (tone + np.random.default_rng(2).normal(0, sigma, len(tone))) * 10 ** (gain_db / 20)
            res[snr, gain_db] = prosody(x.astype(np.float32), OPTS).level_over_floor_db
    assert res[30.0, 0.0] == pytest.approx(res[30.0, -20.0], abs=0.01)
    assert res[30.0, 0.0] - res[15.0, 0.0] == pytest.approx(15.0, abs=3.0)


def test_a_channel_floor_can_replace_the_clip_floor():
    """With the channel's floor handed in, a clip with no pause still measures its level over it."""
    rng = np.random.default_rng(3)
    channel = _harmonic(200.0, 3.0, pad_s=1.0, noise=0.001, seed=4)
    floor = noise_floor(channel, OPTS)
    clip = _harmonic(200.0, 1.0, pad_s=0.0) + rng.normal(0, 0.001, SR).astype(np.float32)
    own, given = prosody(clip, OPTS), prosody(clip, OPTS, floor=floor)
    assert given.level_over_floor_db > own.level_over_floor_db + 10  # own floor: capped guess
    assert given.f0_median_st == pytest.approx(own.f0_median_st, abs=0.1)


def test_noise_alone_has_no_pitch():
    rng = np.random.default_rng(5)
    pr = prosody(rng.normal(0, 0.05, SR).astype(np.float32), OPTS)
    assert pr.f0_median_st is None or pr.voiced_share < 0.1


@pytest.mark.parametrize(
    "x",
    [
        np.zeros(SR, np.float32),
        np.zeros(100, np.float32),
        np.zeros(0, np.float32),
        np.full(SR, 1e-9, np.float32),
    ],
)
def test_silent_or_short_clips_give_no_features(x):
    pr = prosody(x, OPTS)
    assert all(getattr(pr, name) is None for name in FEATURES)
    assert pr.duration_s == pytest.approx(len(x) / SR)


def test_agitation_is_a_weighted_mean_of_floored_z_scores():
    spec = AgitationSpec(("f0_median_st", "f0_high_st"), (0.25, 0.75), (1.0, 2.0), 1.0, 3)
    base = fit_baseline(np.array([[0.0, 10.0], [0.2, 10.0], [-0.2, 10.0]]), spec)
    assert base.std == (1.0, 2.0)  # both below their floors
    x = np.array([[2.0, 14.0], [np.nan, 12.0], [np.nan, np.nan]])
    got = agitation(x, base, spec)
    assert got[0] == pytest.approx(0.25 * 2 + 0.75 * 2)
    assert got[1] == pytest.approx(1.0)  # the missing feature is left out of the mean
    assert np.isnan(got[2])
    rows = [{"f0_median_st": 1.0, "f0_high_st": None}]
    assert np.isnan(feature_matrix(rows, spec)[0, 1])


def test_the_shipped_spec_names_known_features_and_positive_floors():
    assert SPEC.features and set(SPEC.features) <= set(FEATURES)
    assert all(f > 0 for f in SPEC.std_floors)
    assert sum(abs(w) for w in SPEC.weights) == pytest.approx(1.0, abs=1e-3)


# --- real speech ---------------------------------------------------------------------------


def _casia(speaker: str, emotion: str, n: int) -> list[np.ndarray]:
    with open(EMOTION / "manifest.tsv", encoding="utf-8") as f:
        rows = [
            r
            for r in csv.DictReader(f, delimiter="\t")
            if r["speaker"] == speaker and r["emotion"] == emotion
        ]
    return [
        sf.read(EMOTION / r["path"], dtype="float32")[0]
        for r in sorted(rows, key=lambda r: r["sentence_id"])[:n]
    ]


@pytest.mark.parametrize("speaker", ["liuchanhg", "wangzhe"])
def test_a_call_recorded_10_db_louder_keeps_its_agitation(speaker):
    """Same agent, same words: +10 dB on the recording (and +10 dB on the speech over a fixed
    line-noise floor) moves utterance agitation by at most 0.3."""
    require((EMOTION / "manifest.tsv").is_file(), "../shared/eval/emotion absent")
    base_clips = _casia(speaker, "neutral", 12)
    base = fit_baseline(feature_matrix([prosody(x, OPTS) for x in base_clips], SPEC), SPEC)
    rng = np.random.default_rng(6)
    for x in _casia(speaker, "angry", 3) + _casia(speaker, "neutral", 15)[12:]:
        ref = agitation(feature_matrix([prosody(x, OPTS)], SPEC), base, SPEC)[0]
        louder = agitation(
            feature_matrix([prosody(x * np.float32(10**0.5), OPTS)], SPEC), base, SPEC
        )[0]
        assert abs(louder - ref) <= 0.3
        # fixed line noise 35 dB below the original speech, speech 10 dB louder over it
        noise = rng.normal(0, np.sqrt(np.mean(x**2) / 10**3.5), len(x)).astype(np.float32)
        a = agitation(feature_matrix([prosody(x + noise, OPTS)], SPEC), base, SPEC)[0]
        b = agitation(
            feature_matrix([prosody(x * np.float32(10**0.5) + noise, OPTS)], SPEC), base, SPEC
        )[0]
        assert abs(b - a) <= 0.3, (a, b)


def test_options_are_frozen_and_explicit():
    with pytest.raises(dataclasses.FrozenInstanceError):
        OPTS.fmin_hz = 50.0  # type: ignore[misc]
