"""The editable hotword list given to Whisper as previous text: read from a data file a centre
edits, off or on by a setting, short enough for Whisper's prompt window, and never a source of
text on silence, noise or line hum (through the real transcribe path, real weights)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from whisper.tokenizer import get_tokenizer

from pipeline import config as cfg
from pipeline.audio import SAMPLE_RATE
from pipeline.records import CallAudio, Segment
from pipeline.text import echoes_prompt
from pipeline.transcribe import transcribe_calls

CONFIG = cfg.default_config()
ON = replace(CONFIG.asr, hotword_prompt=True)


def test_the_shipped_list_is_read_and_on_by_default():
    assert {"您好", "退款", "工单", "优惠券", "订单号"} <= set(CONFIG.asr.hotwords)
    assert CONFIG.asr.hotword_prompt
    assert CONFIG.asr.prompt == ON.prompt == "、".join(CONFIG.asr.hotwords) + "。"
    assert replace(CONFIG.asr, hotword_prompt=False).prompt == ""


def test_the_prompt_fits_whispers_previous_text_window():
    """Whisper keeps only the last 223 tokens of previous text; the shipped list uses a
    fraction of it, so a centre has room for its own names."""
    tokenizer = get_tokenizer(True, num_languages=99, language="zh")
    assert len(tokenizer.encode(" " + ON.prompt)) < 112


def test_a_centres_own_list_and_the_switch_come_from_its_settings(tmp_path):
    (tmp_path / "ours.txt").write_text(
        "# our products\n星光会员卡\n您好，请问您有什么需要？\n退款 # refunds\n", encoding="utf-8"
    )
    user = tmp_path / "callreview.toml"
    user.write_text('[asr]\nhotwords = "ours.txt"\nhotword_prompt = true\n', encoding="utf-8")
    asr = cfg.load_config(user, {}, cwd=tmp_path).asr
    assert asr.hotwords == ("星光会员卡", "您好，请问您有什么需要？", "退款")
    assert asr.prompt == "星光会员卡、您好，请问您有什么需要？退款。"  # a line's own mark kept
    env = {"CALLREVIEW_ASR__HOTWORD_PROMPT": "false"}
    assert cfg.load_config(user, env, cwd=tmp_path).asr.prompt == ""
    empty = cfg.load_config(None, {"CALLREVIEW_ASR__HOTWORDS": ""}, cwd=tmp_path).asr
    assert empty.hotwords == () and replace(empty, hotword_prompt=True).prompt == ""


def test_a_missing_hotword_file_is_a_clear_error(tmp_path):
    env = {"CALLREVIEW_ASR__HOTWORDS": str(tmp_path / "none.txt")}
    with pytest.raises(cfg.ConfigError, match="word list not found"):
        cfg.load_config(None, env, cwd=tmp_path)


def _no_speech_signals(seconds: float) -> dict[str, np.ndarray]:
    """Digital silence, low white noise (about -60 dBFS) and mains hum (50 Hz and harmonics,
    about -40 dBFS): with the prompt, Whisper copied it on each (the hum in a loop)."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(7)
    hum = sum(a * np.sin(2 * np.pi * f * t) for f, a in ((50, 0.01), (100, 0.005), (150, 0.003)))
    signals = {"silence": np.zeros(n), "noise -60 dBFS": rng.normal(0, 1e-3, n), "hum": hum}
    return {k: v.astype(np.float32) for k, v in signals.items()}


@pytest.mark.slow
def test_no_text_on_silence_noise_or_hum_with_the_prompt_on(asr_model):
    """VAD may fire on a hum or a noise burst: the whole stretch is forced through Whisper as
    a segment, with the hotword prompt, and nothing may be stored."""
    seconds = 10.0
    silent = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    calls = [
        (
            name,
            CallAudio(SAMPLE_RATE, seconds, 8000, 2, "agent_left", "x", (x, silent)),
            [Segment(0.0, seconds, "agent")],
        )
        for name, x in _no_speech_signals(seconds).items()
    ]
    out = transcribe_calls(asr_model, calls, ON)
    assert {k: [u.text for u in t.utterances] for k, t in out.items()} == {
        name: [] for name, _, _ in calls
    }


def test_an_echo_is_text_made_only_of_stretches_of_the_prompt():
    prompt = ON.prompt
    for echo in ("请问您、您、积分。", "請問您、您稍等、扣費", "请问您、请问您、请问您"):
        assert echoes_prompt(echo, prompt)
    for speech in ("您好，请问您有什么需要？", "我要退款", "啊？", ""):
        assert not echoes_prompt(speech, prompt)


def test_a_prompted_window_that_loops_is_decoded_again_without_the_prompt(asr_model):
    """A sample call's closing agent turns (对，就这样，还有别的事吗？ / 行，那就先这样，再见。),
    decoded with the prompt, loop on a copy of it (请问您、您、您…) at a log-probability Whisper is
    sure of; the sampling fallback made hotwords or Japanese of them. Decoded again without the
    prompt, they are heard."""
    from pipeline import review
    from pipeline.manifest import read_manifest
    from pipeline.vad import load_vad_model

    from .conftest import SAMPLES

    calls, _ = read_manifest(SAMPLES)
    call = next(c for c in calls if c.call_id == "A03-C-refund")
    config = replace(CONFIG, asr=ON)
    prepared = review.prepare_call(call, load_vad_model(), None, config)  # stereo: no voices
    [transcript] = review.transcribe_chunk([prepared], asr_model, config).values()
    agent = "".join(u.text for u in transcript.utterances if u.speaker == "agent")
    assert "还有别的事" in agent and "先这样" in agent, agent
    assert "您、您" not in agent
