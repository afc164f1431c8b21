"""Hostile inputs, built at test time (nothing large is committed): broken and odd recordings,
bad manifest rows, and valid recordings without speech (silence, line noise, hold music).

`hostile_folder` writes them all, with two good calls, into one recordings folder and returns
what each manifest row must give (docs/CONTRACTS.md, "Input").
"""

from __future__ import annotations

import csv
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from tests.conftest import ROOT, SAMPLES

SQL_ID = "'); drop table calls; --"
HTML_ID = "<script>alert('x')</script>"
HTML_AGENT = "<script>alert(1)</script>"
MARKUP_ID = "[bold red]boom[/]"  # rich console markup: the summary must print it as text
HEADER = ["path", "call_id", "agent_id", "recorded_at", "agent_hired_at", "channels", "topic"]
HEADER += ["note"]  # an extra column, kept as an attribute


# --- signals -----------------------------------------------------------------------------------


def hum_and_hiss(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Line noise: 50 Hz mains hum with harmonics, hiss, and crackle clicks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = sum(0.04 / k * np.sin(2 * np.pi * 50 * k * t + k) for k in (1, 2, 3, 5, 7))
    x = x + rng.normal(0, 0.02, len(t))
    clicks = rng.choice(len(t), size=int(seconds * 3), replace=False)
    x[clicks] += rng.choice([-0.5, 0.5], size=len(clicks))
    return x.astype(np.float32)


def hold_music(sr: int, seconds: float) -> np.ndarray:
    """A few bars of synthetic music: I-V-vi-IV chords of harmonic-rich notes and a melody."""
    t_note = np.arange(int(sr * 0.5)) / sr
    env = np.minimum(1, t_note / 0.02) * np.exp(-3 * t_note)

    def note(freq: float, amp: float) -> np.ndarray:
        return amp * env * sum(np.sin(2 * np.pi * freq * k * t_note) / k**1.5 for k in range(1, 6))

    chords = [(261.6, 329.6, 392.0), (196.0, 246.9, 293.7), (220.0, 261.6, 329.6)]
    chords += [(174.6, 220.0, 261.6)]
    melody = [523.3, 587.3, 659.3, 784.0, 659.3, 587.3, 523.3, 493.9]
    beats = []
    for i in range(int(seconds / 0.5)):
        chord = chords[(i // 4) % len(chords)]
        beats.append(sum(note(f, 0.08) for f in chord) + note(melody[i % len(melody)], 0.12))
    return np.concatenate(beats).astype(np.float32)


def sample_cut(call_id: str, seconds: float, start_s: float = 0.0) -> tuple[np.ndarray, int]:
    """A cut of a sample call (stereo, its own rate)."""
    with open(SAMPLES / "manifest.csv", encoding="utf-8") as f:
        path = next(r["path"] for r in csv.DictReader(f) if r["call_id"] == call_id)
    data, sr = sf.read(SAMPLES / path, dtype="float32", always_2d=True)
    return data[int(start_s * sr) : int((start_s + seconds) * sr)], sr


def resample(x: np.ndarray, sr: int, to: int) -> np.ndarray:
    return soxr.resample(x, sr, to).astype(np.float32)


def clip(x: np.ndarray, gain: float, ceiling: float) -> np.ndarray:
    """Over-driven audio: amplified and hard-clipped, as a hot microphone records it."""
    return np.clip(x * gain, -ceiling, ceiling).astype(np.float32)


# --- broken files ------------------------------------------------------------------------------


def truncated(path: Path, data: np.ndarray, sr: int, fmt: str, keep: float = 0.5) -> Path:
    """A complete file cut short, as an interrupted copy leaves it."""
    sf.write(path, data, sr, format=fmt)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def corrupted(path: Path, data: np.ndarray, sr: int, fmt: str) -> Path:
    """A complete file whose middle third is overwritten with random bytes."""
    sf.write(path, data, sr, format=fmt)
    raw = bytearray(path.read_bytes())
    a, b = len(raw) // 3, 2 * len(raw) // 3
    raw[a:b] = np.random.default_rng(1).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))
    return path


def sparse_wav(path: Path, seconds: float, sr: int, channels: int) -> Path:
    """A long 16-bit WAV that takes almost no disk: a header, then a hole (digital silence)
    with one quiet second of noise written every ten minutes."""
    frames = int(seconds * sr)
    size = frames * channels * 2
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * channels * 2, channels * 2, 16)
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE" + b"fmt " + fmt
    header += b"data" + struct.pack("<I", size)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(header)
        for start in range(0, int(seconds), 600):
            f.seek(len(header) + start * sr * channels * 2)
            f.write(rng.normal(0, 30, sr * channels).astype("<i2").tobytes())
        f.truncate(len(header) + size)
    return path


# --- the folder --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One manifest row and what it must give."""

    name: str
    row: dict[str, str]
    status: str  # ok | failed
    reason: str = ""  # part of the failure's reason
    stage: str = ""  # manifest | process
    speech: bool = False  # an ok call that must yield utterances (else: none at all)


def _row(path: str, call_id: str, **kw: str) -> dict[str, str]:
    row = {"path": path, "call_id": call_id, "agent_id": "Q1", "recorded_at": "2024-05-01"}
    return {**dict.fromkeys(HEADER, ""), **row, **kw}


def _bad(name: str, path: str, reason: str, stage: str = "process", **kw: str) -> Case:
    return Case(name, _row(path, kw.pop("call_id", name), **kw), "failed", reason, stage)


def hostile_folder(root: Path, long_s: float = 7200.0) -> tuple[Path, list[Case]]:
    """`root`/recordings with every hostile input and two good calls; returns the folder and
    the cases, in manifest order. The manifest itself has a BOM and CRLF line ends."""
    folder = root / "recordings"
    (folder / "good").mkdir(parents=True)
    (root / "outside.wav").write_bytes(b"")
    sf.write(root / "outside.wav", np.zeros((8000, 2), np.float32), 8000)
    tone, tone_sr = sample_cut("A02-E-refund", 3.0)

    # Two good calls at odd rates, one agent (early and current), hostile ids.
    early, sr = sample_cut("A01-E-refund", 24.0)
    sf.write(folder / "good" / "early.flac", resample(early, sr, 44_100), 44_100)
    current, sr = sample_cut("A01-C-refund", 22.0)
    sf.write(folder / "good" / "current.wav", resample(current, sr, 48_000), 48_000)
    hired = {"agent_id": HTML_AGENT, "agent_hired_at": "2024-01-08", "topic": "refund<b>"}
    cases = [
        Case(
            "good-early",
            _row(
                "good/early.flac",
                SQL_ID,
                recorded_at="2024-01-22T10:15:00",
                channels="agent_left",
                note="<i>vip</i>",
                **hired,
            ),
            "ok",
            speech=True,
        ),
        Case(
            "good-current",
            _row("good/current.wav", HTML_ID, recorded_at="2025-03-03T09:00:00+08:00", **hired),
            "ok",
            speech=True,
        ),
    ]

    # Valid recordings without speech: no text may be invented on them.
    rng = np.random.default_rng(2)
    sf.write(folder / "silence.wav", rng.normal(0, 1e-4, (8000 * 20, 2)).astype("f4"), 8000)
    noise = np.stack([hum_and_hiss(11_025, 20.0, 3), hum_and_hiss(11_025, 20.0, 4)], 1)
    sf.write(folder / "line_noise.wav", noise, 11_025)
    music = hold_music(32_000, 16.0)
    sf.write(folder / "hold_music.flac", np.stack([music, 0.001 * music], 1), 32_000)
    cases += [
        Case("silence", _row("silence.wav", "silence", channels="agent_left"), "ok"),
        # two channels declared mono: mixed down and read as one mix (documented)
        Case("line-noise", _row("line_noise.wav", "line-noise", channels="mono"), "ok"),
        Case("hold-music", _row("hold_music.flac", "hold-music"), "ok"),
    ]

    # Clipped speech, and a mono recording saved as two identical channels.
    speech, sr = sample_cut("A02-E-refund", 12.0)
    sf.write(folder / "clipped.wav", clip(speech, 8.0, 0.3), sr, subtype="PCM_16")
    verify, vsr = sf.read(ROOT / "pipeline" / "data" / "verify_zh.flac", dtype="float32")
    sf.write(folder / "dual_mono.wav", np.stack([verify, verify], 1), vsr)
    sf.write(folder / "dual_mono_right.wav", np.stack([verify, verify], 1), vsr)
    cases += [
        Case("clipped", _row("clipped.wav", "clipped", agent_id="Q2"), "ok", speech=True),
        Case("dual-mono", _row("dual_mono.wav", "dual-mono", agent_id="Q2"), "ok", speech=True),
    ]

    # Recordings that cannot be used: the call fails with the reason.
    (folder / "empty.wav").write_bytes(b"")
    (folder / "not_audio.wav").write_text("call notes, not a recording\n" * 50)
    (folder / "corrupt_header.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" * 8)
    stereo = np.tile(tone, (3, 1))
    for fmt in ("wav", "flac", "mp3", "ogg"):
        truncated(folder / f"truncated.{fmt}", stereo, tone_sr, fmt.upper())
    for fmt in ("flac", "mp3", "ogg"):
        corrupted(folder / f"corrupt.{fmt}", stereo, tone_sr, fmt.upper())
    sf.write(folder / "blip.wav", tone[:40], tone_sr)  # 5 ms
    sf.write(folder / "three_channels.wav", np.tile(tone[:, :1], (1, 3)), tone_sr)
    sf.write(folder / "mono.wav", tone[:, 0], tone_sr)
    sf.write(folder / "low_rate.wav", resample(tone, tone_sr, 4000), 4000)
    nan = tone.copy()
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, tone_sr, subtype="FLOAT")
    sparse_wav(folder / "long.wav", long_s, 8000, 2)
    cases += [
        _bad("empty-file", "empty.wav", "empty file (0 bytes)"),
        _bad("not-audio", "not_audio.wav", "not a recognised audio format"),
        _bad("corrupt-header", "corrupt_header.wav", "unreadable audio"),
        _bad("truncated-wav", "truncated.wav", "truncated audio"),
        _bad("truncated-flac", "truncated.flac", "truncated audio"),
        _bad("truncated-mp3", "truncated.mp3", "truncated audio"),
        _bad("truncated-ogg", "truncated.ogg", "truncated audio"),
        _bad("corrupt-flac", "corrupt.flac", "corrupt or truncated audio"),
        _bad("corrupt-mp3", "corrupt.mp3", "corrupt or truncated audio"),
        _bad("corrupt-ogg", "corrupt.ogg", "truncated audio"),
        _bad("blip", "blip.wav", "too short"),
        _bad("three-channels", "three_channels.wav", "3 channels"),
        _bad("mono-as-stereo", "mono.wav", "file is mono", channels="agent_left"),
        _bad("dual-mono-as-stereo", "dual_mono_right.wav", "same signal", channels="agent_right"),
        _bad("low-rate", "low_rate.wav", "below 8000 Hz"),
        _bad("nan", "nan.wav", "NaN"),
        _bad("long", "long.wav", "max_duration_s"),
    ]

    # Manifest rows that are wrong: reported with the line, the rest runs.
    (folder / "adir.wav").mkdir()
    (folder / "notes.txt").write_text("x")
    os.symlink(root / "outside.wav", folder / "link_out.wav")
    m = "manifest"
    cases += [
        _bad("missing-file", "missing.wav", "audio file not found", m),
        _bad("directory", "adir.wav", "is a directory", m),
        _bad("dot-dot", "../outside.wav", "escapes the recordings folder", m),
        _bad("absolute", str(folder / "silence.wav"), "is absolute", m),
        _bad("symlink-out", "link_out.wav", "outside the recordings folder through a link", m),
        _bad("bad-date", "silence.wav", "recorded_at", m, recorded_at="last tuesday"),
        _bad("no-date", "silence.wav", "empty required field 'recorded_at'", m, recorded_at=""),
        _bad("feb-30", "silence.wav", "not an ISO 8601", m, recorded_at="2024-02-30"),
        _bad("bad-hire", "silence.wav", "agent_hired_at", m, agent_hired_at="2024-13-01"),
        _bad("no-id", "silence.wav", "empty required field 'call_id'", m, call_id=""),
        _bad("duplicate", "silence.wav", "duplicate call_id", m, call_id=SQL_ID),
        _bad("channels", "silence.wav", "channels must be one of", m, channels="left"),
        _bad("not-audio-type", "notes.txt", "unsupported audio type", m),
        _bad("no-agent", "silence.wav", "empty required field 'agent_id'", m, agent_id=""),
        _bad("markup", "missing.wav", "audio file not found", m, call_id=MARKUP_ID),
    ]
    with open(folder / "manifest.csv", "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HEADER, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(c.row for c in cases)
        f.write("short.wav,short-row\r\n")  # too few fields: no agent, no date
    cases.append(
        _bad("short-row", "short.wav", "empty required field 'agent_id'", m, call_id="short-row")
    )
    return folder, cases
