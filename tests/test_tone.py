"""Acoustic and turn-taking figures on generated signals with known answers."""

import numpy as np
import pytest

from pipeline.audio import SAMPLE_RATE
from pipeline.config import default_config
from pipeline.records import Utterance
from pipeline.tone import acoustics, muted_seconds, speech_rate_cpm, turn_taking

CONFIG = default_config()
TONE, VOICE = CONFIG.tone, CONFIG.prosody


def _harmonic(f0: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (amp * x / np.abs(x).max()).astype(np.float32)


def test_pitch_and_loudness_of_a_voice_like_tone():
    ac = acoustics(_harmonic(200.0, 1.5), TONE, VOICE)
    assert ac.pitch_median_hz == pytest.approx(200.0, rel=0.02)
    assert ac.pitch_range_st < 0.5
    quiet = acoustics(_harmonic(200.0, 1.5, amp=0.03), TONE, VOICE)
    assert ac.loudness_dbfs - quiet.loudness_dbfs == pytest.approx(20.0, abs=0.5)


def test_gliding_pitch_has_a_wide_range():
    t = np.arange(int(2 * SAMPLE_RATE)) / SAMPLE_RATE
    f = 150 * 2 ** (t / 2)  # one octave over 2 s
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    # a voice has harmonics: pitch is read in the telephone band (300-3400 Hz), where a pure
    # sine below 300 Hz would not be heard at all
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    x = (0.3 * x / np.abs(x).max()).astype(np.float32)
    assert acoustics(x, TONE, VOICE).pitch_range_st == pytest.approx(0.8 * 12, abs=1.5)


def test_silence_has_no_pitch_or_loudness():
    ac = acoustics(np.zeros(SAMPLE_RATE, dtype=np.float32), TONE, VOICE)
    assert ac.pitch_median_hz is None and ac.loudness_dbfs is None


def test_speech_rate_in_characters_per_minute():
    assert speech_rate_cpm("您好请问有什么可以帮您", 3.0, TONE) == pytest.approx(11 / 3 * 60)
    assert speech_rate_cpm("好", 0.1, TONE) is None


def test_overtalk_interruption_dead_air_and_latency():
    u = [
        Utterance("c", 0, "agent", 0.0, 3.0, "您好"),
        Utterance("c", 1, "customer", 3.5, 8.0, "我想问"),
        Utterance("c", 2, "agent", 6.5, 10.0, "你听我说"),  # starts 3 s into the customer's turn
        Utterance("c", 3, "customer", 14.0, 15.0, "好"),  # 4 s of dead air before it
        Utterance("c", 4, "agent", 15.8, 17.0, "谢谢"),
    ]
    tt = turn_taking(u, TONE)
    assert tt.overlap_s[2] == pytest.approx(1.5) and tt.overlap_s[1] == pytest.approx(1.5)
    assert tt.interrupts == [False, False, True, False, False]
    assert (tt.overtalk_count, tt.agent_interruptions, tt.customer_interruptions) == (1, 1, 0)
    assert tt.dead_air_count == 1 and tt.dead_air_total_s == pytest.approx(4.0)
    assert tt.latencies_s == pytest.approx([0.0, 0.8])  # the interruption answers at once


def test_longest_silence_and_holds():
    u = [
        Utterance("c", 0, "agent", 0.0, 2.0, "您好"),
        Utterance("c", 1, "customer", 14.0, 16.0, "喂"),  # 12 s of nothing: a hold
        Utterance("c", 2, "agent", 19.0, 20.0, "您好"),  # 3 s: dead air, not a hold
    ]
    tt = turn_taking(u, TONE)
    assert tt.dead_air_max_s == pytest.approx(12.0)
    assert (tt.hold_count, tt.hold_total_s) == (1, pytest.approx(12.0))
    assert tt.dead_air_count == 2  # a hold is also dead air


def test_muted_line_is_digital_silence_not_line_noise():
    rng = np.random.default_rng(0)
    line = rng.normal(0, 3e-3, 10 * SAMPLE_RATE).astype(np.float32)  # about -50 dBFS hiss
    line[3 * SAMPLE_RATE : 6 * SAMPLE_RATE] = 0.0  # 3 s muted
    line[7 * SAMPLE_RATE : int(7.5 * SAMPLE_RATE)] = 0.0  # 0.5 s: a pause, not muting
    assert muted_seconds(line, 0.0, 10.0, TONE) == pytest.approx(3.0, abs=0.1)
    assert muted_seconds(line, 6.5, 10.0, TONE) == 0.0
