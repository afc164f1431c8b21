"""Every call-level figure pinned on one crafted stereo call: voice-like tones of known pitch
and level at known times on each channel, and a Chinese dialogue with known phrase counts."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.audio import SAMPLE_RATE
from pipeline.config import default_config
from pipeline.metrics import measure_call
from pipeline.records import CallAudio, Coverage, Transcript, Utterance

CONFIG = default_config()
DURATION = 40.0
# (speaker, start, end, f0 Hz, amplitude, text)
TURNS = [
    ("agent", 1.0, 5.0, 200.0, 0.1, "您好，请问有什么可以帮您？"),
    ("customer", 5.5, 10.0, 150.0, 0.2, "我的退款什么时候到账？"),
    (
        "agent",
        9.0,
        15.0,
        200.0,
        0.1,
        "首先退款会原路退回，三个工作日到账，不归我管。",
    ),  # overtalk 1 s
    ("customer", 19.0, 21.0, 150.0, 0.2, "什么意思？没听懂。"),  # 4 s of dead air before it
    ("agent", 33.0, 36.0, 200.0, 0.1, "我已经说过了，您看这样清楚吗？"),  # 12 s hold before it
]


def _tone(f0: float, seconds: float, amp: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    return (amp * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def figures():
    n = int(DURATION * SAMPLE_RATE)
    rng = np.random.default_rng(0)
    tracks = {s: rng.normal(0, 1e-3, n).astype(np.float32) for s in ("agent", "customer")}
    tracks["agent"][int(25 * SAMPLE_RATE) : int(29 * SAMPLE_RATE)] = 0.0  # 4 s muted line
    for speaker, a, b, f0, amp, _ in TURNS:
        i = int(a * SAMPLE_RATE)
        tracks[speaker][i : i + int((b - a) * SAMPLE_RATE)] += _tone(f0, b - a, amp)
    audio = CallAudio(
        SAMPLE_RATE, DURATION, 8000, 2, "agent_left", "x", (tracks["agent"], tracks["customer"])
    )
    utts = [Utterance("c", i, s, a, b, text) for i, (s, a, b, _, _, text) in enumerate(TURNS)]
    transcript = Transcript(utts, {"agent": Coverage(13.0, 12.0), "customer": Coverage(6.5, 6.5)})
    return measure_call(
        "c", audio, transcript, CONFIG.tone, CONFIG.prosody, CONFIG.clarity, CONFIG.lexicon
    )


def test_every_call_figure(figures):
    utt, call = figures
    chars = [len(t[5].replace("，", "").replace("？", "").replace("。", "")) for t in TURNS]
    agent_s, customer_s = 4.0 + 6.0 + 3.0, 4.5 + 2.0
    agent_chars = chars[0] + chars[2] + chars[4]
    expected = {
        "agent_speech_s": agent_s,
        "customer_speech_s": customer_s,
        "agent_asr_coverage": 12 / 13,
        "customer_asr_coverage": 1.0,
        "agent_talk_ratio": agent_s / (agent_s + customer_s),
        "agent_speech_rate_cpm": agent_chars / agent_s * 60,
        "customer_speech_rate_cpm": (chars[1] + chars[3]) / customer_s * 60,
        "agent_fast_speech_share": 0.0,
        "dead_air_count": 2,
        "dead_air_total_s": 4.0 + 12.0,
        "dead_air_max_s": 12.0,
        "hold_count": 1,
        "hold_total_s": 12.0,
        "overtalk_count": 1,
        "overtalk_total_s": 1.0,
        "agent_interruptions": 1,
        "customer_interruptions": 0,
        "response_latency_median_s": 6.0,  # answers at once (interrupting) and 12 s after
        "agent_politeness_count": 4,  # 您 x3, 请问
        "agent_impatience_count": 1,
        "agent_forbidden_count": 1,
        "agent_structure_count": 1,
        "agent_confirmation_count": 1,
        "customer_confusion_count": 2,
        "agent_repeat_count": 0,
        "agent_chars_per_customer_turn": (chars[2] + chars[4]) / 2,
    }
    expected["agent_politeness_per_min"] = 4 / (agent_s / 60)
    expected["agent_impatience_per_min"] = 1 / (agent_s / 60)
    for name, value in expected.items():
        assert getattr(call, name) == pytest.approx(value, abs=1e-6), name
    # audio figures: known pitch and level, gain-free pitch within 2 %
    assert call.agent_pitch_median_hz == pytest.approx(200, rel=0.02)
    assert call.customer_pitch_median_hz == pytest.approx(150, rel=0.02)
    assert call.agent_pitch_range_st < 0.5
    assert call.customer_loudness_dbfs - call.agent_loudness_dbfs == pytest.approx(6.0, abs=0.5)
    assert call.agent_loudness_vs_customer_db == pytest.approx(
        call.agent_loudness_dbfs - call.customer_loudness_dbfs
    )
    assert call.agent_loudness_std_db == pytest.approx(0.0, abs=0.3)
    assert call.agent_mute_total_s == pytest.approx(4.0, abs=0.1)
    assert call.agent_jargon_count == 3  # 原路退回, 工作日, 到账
    assert call.agent_jargon_per_100_words == pytest.approx(
        100 * 3 / sum(f.n_words for f, t in zip(utt, TURNS, strict=True) if t[0] == "agent")
    )
    assert call.agent_sentence_chars_mean is not None and call.agent_long_sentence_share == 0.0
    assert [f.interrupts for f in utt] == [False, False, True, False, False]
    assert utt[2].overlaps_other_s == pytest.approx(1.0)
