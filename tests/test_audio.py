"""Decoding recordings: formats, rates, channel layouts and clear errors for bad files."""

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import AudioError, load_call


def _stereo(sr=8000, seconds=2.0):
    t = np.arange(int(sr * seconds)) / sr
    return np.stack(
        [0.5 * np.sin(2 * np.pi * 300 * t), 0.1 * np.sin(2 * np.pi * 500 * t)], 1
    ).astype(np.float32)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_stereo_defaults_to_agent_left_at_16k(tmp_path, ext):
    path = tmp_path / f"c.{ext}"
    sf.write(path, _stereo(), 8000)
    a = load_call(path)
    assert (a.layout, a.sr, a.source_sr, a.n_channels) == ("agent_left", 16000, 8000, 2)
    assert a.duration_s == pytest.approx(2.0, abs=0.01) and len(
        a.samples("agent")
    ) == pytest.approx(32000, abs=200)
    assert (
        np.abs(a.samples("agent")).max() > 3 * np.abs(a.samples("customer")).max()
    )  # the loud channel is the agent's
    assert len(a.sha256) == 64


def test_agent_right_swaps_channels(tmp_path):
    sf.write(tmp_path / "c.wav", _stereo(), 8000)
    a = load_call(tmp_path / "c.wav", "agent_right")
    assert np.abs(a.samples("customer")).max() > 3 * np.abs(a.samples("agent")).max()


def test_mono_file(tmp_path):
    sf.write(tmp_path / "m.wav", _stereo()[:, 0], 8000)
    a = load_call(tmp_path / "m.wav")
    assert a.is_mono and len(a.tracks) == 1
    assert a.samples("agent") is a.samples("customer")  # both voices are on the one mix
    with pytest.raises(AudioError, match="file is mono"):
        load_call(tmp_path / "m.wav", "agent_left")


def test_unreadable_empty_and_short_files(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav file")
    with pytest.raises(AudioError, match="unreadable audio"):
        load_call(tmp_path / "bad.wav")
    sf.write(tmp_path / "short.wav", _stereo(seconds=0.2), 8000)
    with pytest.raises(AudioError, match="too short"):
        load_call(tmp_path / "short.wav")
