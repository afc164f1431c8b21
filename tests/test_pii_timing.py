"""A masked span is timed from when its characters were spoken (pipeline.asr.timing: Whisper's
own word timing forced on the stored text), on real speech: the project's verification clip
said twice with a pause between, and the real run's read-out phone number (tests/test_pii_run.py
checks the mute there against the recording)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pipeline.asr.decode import make_runtime
from pipeline.asr.timing import char_times
from pipeline.asr.verify import VERIFY_AUDIO, VERIFY_TEXT
from pipeline.audio import SAMPLE_RATE
from pipeline.redact import RedactOptions, redact_utterances, retime

PAUSE_S = 1.5


def test_each_character_is_timed_where_it_is_spoken(asr_model):
    clip, sr = sf.read(VERIFY_AUDIO, dtype="float32")
    assert sr == SAMPLE_RATE
    said = clip / 2  # the second saying quieter: timing follows the words, not the loudness
    audio = np.concatenate([clip, np.zeros(int(PAUSE_S * sr), np.float32), said])
    text = VERIFY_TEXT.read_text(encoding="utf-8").strip()
    runtime = make_runtime(asr_model, "fp32")
    times = char_times(runtime.model, runtime.tokenizer, audio, text + text)
    assert times is not None and len(times) == 2 * len(text)
    starts = [a for a, _ in times]
    assert starts == sorted(starts) and all(a <= b for a, b in times)
    first = len(clip) / sr
    offset = first + PAUSE_S  # where the second saying's copy of each character must lie
    assert times[len(text) - 1][1] < first + 0.5 * PAUSE_S  # the first saying ends before
    # each character of the second saying ends where its twin ended, one clip and pause later
    # (ends: Whisper's timing gives a word after a pause an early start, the pause's silence)
    moved = [
        b2 - b1 for (_, b1), (_, b2) in zip(times[: len(text)], times[len(text) :], strict=True)
    ]
    assert sum(abs(m - offset) < 0.3 for m in moved) >= 0.9 * len(text), (offset, moved)
    assert times[-1][1] <= len(audio) / sr + 0.1


def test_no_text_or_too_long_a_clip_is_not_timed(asr_model):
    runtime = make_runtime(asr_model, "fp32")
    silence = np.zeros(SAMPLE_RATE, np.float32)
    assert char_times(runtime.model, runtime.tokenizer, silence, "") is None
    long = np.zeros(31 * SAMPLE_RATE, np.float32)
    assert char_times(runtime.model, runtime.tokenizer, long, "您好") is None


def test_retime_puts_the_span_where_its_characters_were_said():
    text = "我的手机号是13812345678，谢谢您"
    (red,) = redact_utterances([("customer", 10.0, 20.0, text)], RedactOptions(mute_pad_s=0.3))
    # the number said between 4.0 s and 7.5 s of the utterance, whatever the share of text
    said = [(0.1 * i, 0.1 * i + 0.1) for i in range(len(text))]
    said[6:17] = [(4.0 + 0.3 * k, 4.0 + 0.3 * k + 0.3) for k in range(10)] + [(7.2, 7.5)]
    (span,) = retime(red, said, 0.3).spans
    assert (span.start_char, span.end_char) == (6, 17)
    assert span.start_s == pytest.approx(13.7) and span.end_s == pytest.approx(17.8)
