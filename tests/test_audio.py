"""Decoding recordings: formats, rates, channel layouts and clear errors for bad files."""

import re

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import AudioError, load_call
from pipeline.config import AudioOptions
from tests import hostile


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


# --- hostile recordings (issue 7): each refused with its reason, odd but valid ones accepted ---

LIMITS = AudioOptions(max_duration_s=3600.0, min_duration_s=0.5)


def _speechlike(sr=8000, seconds=3.0, channels=2):
    x = _stereo(sr, seconds)
    return x[:, :channels] if channels <= 2 else np.tile(x[:, :1], (1, channels))


def _refusal(path, layout=None, options=LIMITS) -> str:
    with pytest.raises(AudioError) as e:
        load_call(path, layout, options)
    return str(e.value)


def test_empty_non_audio_and_directories(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    assert _refusal(tmp_path / "empty.wav") == "empty file (0 bytes)"
    (tmp_path / "notes.wav").write_text("not audio at all\n" * 20)
    assert "not a recognised audio format" in _refusal(tmp_path / "notes.wav")
    (tmp_path / "png.flac").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert "not a recognised audio format" in _refusal(tmp_path / "png.flac")
    (tmp_path / "d.wav").mkdir()
    assert "is a directory" in _refusal(tmp_path / "d.wav")
    assert "cannot read the file" in _refusal(tmp_path / "gone.wav")


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "MP3", "OGG"])
def test_truncated_copies_are_refused_not_read_as_shorter_calls(tmp_path, fmt):
    path = hostile.truncated(tmp_path / f"t.{fmt.lower()}", _stereo(seconds=9.0), 8000, fmt)
    assert "truncated" in _refusal(path)


@pytest.mark.parametrize("fmt", ["FLAC", "MP3", "OGG"])
def test_corrupt_compressed_files_are_refused(tmp_path, fmt):
    path = hostile.corrupted(tmp_path / f"c.{fmt.lower()}", _stereo(seconds=9.0), 8000, fmt)
    assert re.search("corrupt|truncated|unreadable", _refusal(path))


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "MP3", "OGG"])
def test_complete_files_of_every_format_are_not_taken_for_truncated(tmp_path, fmt):
    sf.write(tmp_path / f"ok.{fmt.lower()}", _stereo(seconds=9.0), 8000, format=fmt)
    assert load_call(tmp_path / f"ok.{fmt.lower()}", None, LIMITS).duration_s == pytest.approx(
        9.0, abs=0.1
    )


def test_a_streaming_recorders_unfinished_wav_header_is_read_to_the_end(tmp_path):
    """Recorders that write while the call goes on leave the data size 0 or 0xFFFFFFFF."""
    path = tmp_path / "live.wav"
    sf.write(path, _stereo(seconds=2.0), 8000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"data") + 4 : raw.index(b"data") + 8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(raw))
    assert load_call(path, None, LIMITS).duration_s == pytest.approx(2.0, abs=0.01)


def test_format_refusals(tmp_path):
    sf.write(tmp_path / "blip.wav", _stereo(seconds=0.005), 8000)
    assert "too short (0.01 s; at least 0.5 s)" in _refusal(tmp_path / "blip.wav")
    sf.write(tmp_path / "three.wav", _speechlike(channels=3), 8000)
    assert "3 channels" in _refusal(tmp_path / "three.wav")
    sf.write(tmp_path / "low.wav", _stereo(sr=4000), 4000)
    assert "sample rate 4000 Hz is below 8000 Hz" in _refusal(tmp_path / "low.wav")
    nan = _stereo()
    nan[12345, 1] = np.inf
    sf.write(tmp_path / "nan.wav", nan, 8000, subtype="FLOAT")
    assert "NaN or infinite" in _refusal(tmp_path / "nan.wav")
    sf.write(tmp_path / "m.wav", _stereo()[:, 0], 8000)
    assert "channels=agent_right (one speaker per channel) but the file is mono" in _refusal(
        tmp_path / "m.wav", "agent_right"
    )


def test_the_duration_limit_comes_from_the_settings(tmp_path):
    hostile.sparse_wav(tmp_path / "long.wav", 7200.0, 8000, 2)
    message = _refusal(tmp_path / "long.wav", options=AudioOptions(3600.0, 0.5))
    assert "2.0 h long; the limit is [audio] max_duration_s = 3600 s" in message
    sf.write(tmp_path / "ok.wav", _stereo(seconds=2.0), 8000)
    assert "at least 3 s" in _refusal(tmp_path / "ok.wav", options=AudioOptions(3600.0, 3.0))


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 44100, 48000])
def test_odd_sample_rates_are_resampled(tmp_path, sr):
    sf.write(tmp_path / "c.flac", _stereo(sr=sr, seconds=2.5), sr)
    a = load_call(tmp_path / "c.flac", None, LIMITS)
    assert (a.source_sr, a.sr, a.layout) == (sr, 16000, "agent_left")
    assert len(a.samples("agent")) == pytest.approx(40000, abs=2)
    # a 300 Hz tone stays a 300 Hz tone
    spectrum = np.abs(np.fft.rfft(a.samples("agent")))
    assert np.argmax(spectrum) * 16000 / len(a.samples("agent")) == pytest.approx(300, abs=2)


def test_stereo_declared_mono_is_mixed_down(tmp_path):
    x = _stereo()
    sf.write(tmp_path / "s.wav", x, 8000)
    a = load_call(tmp_path / "s.wav", "mono", LIMITS)
    assert (a.layout, a.n_channels, len(a.tracks)) == ("mono", 2, 1)
    ref = load_call(tmp_path / "s.wav", None, LIMITS)
    mix = (ref.samples("agent") + ref.samples("customer")) / 2
    assert np.abs(a.samples("agent") - mix).max() < 1e-4


def test_one_signal_on_both_channels_is_a_mono_recording(tmp_path):
    x = _stereo()[:, :1]
    sf.write(tmp_path / "dual.ogg", np.hstack([x, x]), 8000)
    a = load_call(tmp_path / "dual.ogg", None, LIMITS)
    assert (a.layout, a.n_channels, len(a.tracks)) == ("mono", 2, 1)
    assert "both channels carry the same signal" in _refusal(tmp_path / "dual.ogg", "agent_left")
    assert load_call(tmp_path / "dual.ogg", "mono", LIMITS).is_mono
    # digital silence on both sides is not "one signal": a silent stereo call stays stereo
    sf.write(tmp_path / "quiet.wav", np.zeros((16000, 2), np.float32), 8000)
    assert load_call(tmp_path / "quiet.wav", "agent_left", LIMITS).layout == "agent_left"


def test_block_decoding_matches_whole_file_resampling(tmp_path, monkeypatch):
    import librosa

    import pipeline.audio as audio

    monkeypatch.setattr(audio, "BLOCK_S", 0.7)  # many blocks, odd boundaries
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((44100 * 5, 2))).astype(np.float32)
    sf.write(tmp_path / "n.wav", x, 44100, subtype="FLOAT")
    a = load_call(tmp_path / "n.wav", None, LIMITS)
    whole = librosa.resample(x[:, 1], orig_sr=44100, target_sr=16000, res_type="soxr_hq")
    assert len(a.samples("customer")) == len(whole)
    assert np.abs(a.samples("customer") - whole).max() < 1e-5


def test_a_long_file_costs_its_16k_tracks_and_one_block(tmp_path):
    """Memory while decoding (numpy's allocations, traced): the 16 kHz float32 tracks plus a
    block, never the whole file at its source rate or float64 copies."""
    import tracemalloc

    seconds = 1200.0
    hostile.sparse_wav(tmp_path / "long.wav", seconds, 8000, 2)
    tracks_bytes = 2 * seconds * 16000 * 4
    tracemalloc.start()
    try:
        a = load_call(tmp_path / "long.wav", None, LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert a.duration_s == seconds
    block_bytes = 60 * 8000 * 2 * 4 * 4  # a float32 block, its mix/copies and resampled output
    assert peak < tracks_bytes * 1.02 + block_bytes + 5e6, peak / 2**20


@pytest.mark.slow
def test_a_two_hour_file_is_streamed_with_bounded_memory(tmp_path):
    """Peak RSS of a fresh process loading a 2-hour 8 kHz stereo call (sparse on disk)."""
    import subprocess
    import sys

    hostile.sparse_wav(tmp_path / "2h.wav", 7200.0, 8000, 2)
    code = (
        "import resource, sys; from pipeline.audio import load_call; "
        "from pipeline.config import AudioOptions; "
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
        "a = load_call(sys.argv[1], None, AudioOptions(14400.0, 0.5)); "
        "print(a.duration_s, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "2h.wav")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    duration, base_kb, peak_kb = map(float, out.stdout.split())
    tracks_mib = 2 * 7200 * 16000 * 4 / 2**20  # 879 MiB: what CallAudio must hold
    print(
        f"2 h file: peak RSS {peak_kb / 1024:.0f} MiB, {(peak_kb - base_kb) / 1024:.0f} MiB "
        f"above the interpreter, tracks {tracks_mib:.0f} MiB"
    )
    assert duration == 7200.0
    assert (peak_kb - base_kb) / 1024 < tracks_mib + 120
