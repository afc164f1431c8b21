"""Decode a call recording into per-speaker float32 channels at 16 kHz.

Whisper and silero-vad both want 16 kHz mono float32; pitch and loudness are measured on
the same arrays so every figure refers to the same samples.

Recordings are decoded and resampled a block at a time (soxr's streaming resampler gives the
same samples as resampling the whole file), so a two-hour call costs its 16 kHz float32 tracks
plus one block, never the whole file at its source rate or float64 copies. What is refused, and
why, is docs/CONTRACTS.md, "Input": every refusal is an AudioError whose message is the reason
stored in `failures` and `calls.error`.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from pipeline.config import AudioOptions
from pipeline.hashing import file_sha256
from pipeline.records import CallAudio, ChannelLayout

SAMPLE_RATE = 16_000
MIN_DURATION_S = 0.5  # without AudioOptions (report clips, scripts): the [audio] default
MIN_SOURCE_RATE = 8_000  # telephone band; below it speech is not intelligible enough to score
BLOCK_S = 60.0  # decode a minute at a time: a few MB per block at any rate
# Two channels that never differ by more than this (-60 dBFS) carry one signal: a mono
# recording exported as stereo. Lossy codecs can leave tiny differences between them.
SAME_SIGNAL_TOL = 1e-3
SILENT_PEAK = 1e-2  # a recording that never goes above this (-40 dBFS) is not "one signal twice"
TRUNCATION_TOL_S = 0.25  # mp3 headers count encoder padding: a shortfall below this is normal
_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}
_SAMPLE_BYTES |= {"DOUBLE": 8, "ULAW": 1, "ALAW": 1}


class AudioError(ValueError):
    """The recording cannot be used; the message says why. `transient` marks a file that could
    not be read at all (vanished, locked, an I/O error on a share), worth retrying; a file that
    was read and is bad (corrupt, truncated, too short) is not."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple:
        return AudioError, (str(self), self.transient)  # keep `transient` across processes


class _Track:
    """A float32 buffer sized from the header, so a long call is written in place (no list of
    blocks concatenated at the end, which would hold the call twice); grows if the header lied."""

    def __init__(self, n: int) -> None:
        self.buf = np.empty(max(n, SAMPLE_RATE), dtype=np.float32)  # pages are touched lazily
        self.n = 0

    def extend(self, x: np.ndarray) -> None:
        need = self.n + len(x)
        if need > len(self.buf):
            grown = np.empty(max(need, 2 * len(self.buf)), dtype=np.float32)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown
        self.buf[self.n : need] = x
        self.n = need

    def array(self) -> np.ndarray:
        return self.buf[: self.n]


def _open(path: Path) -> sf.SoundFile:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise AudioError(f"cannot read the file: {e.strerror or e}", transient=True) from None
    if path.is_dir():
        raise AudioError("is a directory, not an audio file")
    if size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        return sf.SoundFile(str(path))
    except sf.LibsndfileError as e:
        why = {
            1: "not a recognised audio format (wav, flac, ogg, mp3)",
            3: "corrupt or truncated audio header",
            4: "unsupported audio encoding",
        }.get(e.code, e.error_string.strip() or f"libsndfile error {e.code}")
        raise AudioError(f"unreadable audio: {why}") from None
    except (RuntimeError, TypeError, OSError) as e:
        raise AudioError(f"unreadable audio: {e}") from None


def _wav_shortfall_s(path: Path, sr: int, frame_bytes: int) -> float:
    """Seconds a WAV's header promises beyond the bytes the file holds (0 when complete).

    libsndfile quietly clamps a WAV's length to the file, so a copy cut short would pass as a
    shorter call. Recorders that stream to disk leave the size 0 or 0xFFFFFFFF until they
    finish: those headers promise nothing and are read to the end of the file.
    """
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        size = f.seek(0, 2)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0.0  # RF64, W64...: libsndfile's own length stands
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            if length in (0, 0xFFFFFFFF):
                return 0.0
            missing = length - (size - pos - 8)
            return max(0, missing) / frame_bytes / sr
        pos += 8 + length + (length & 1)
    return 0.0


def _check_format(f: sf.SoundFile, layout: ChannelLayout | None, max_s: float) -> None:
    """Refusals that the header alone decides, before any decoding."""
    if f.channels > 2:
        raise AudioError(f"{f.channels} channels: expected mono or stereo (one speaker each)")
    if layout in ("agent_left", "agent_right") and f.channels == 1:
        raise AudioError(
            f"manifest says channels={layout} (one speaker per channel) but the file is mono: "
            "set channels=mono or leave it empty"
        )
    if f.samplerate < MIN_SOURCE_RATE:
        raise AudioError(f"sample rate {f.samplerate} Hz is below {MIN_SOURCE_RATE} Hz")
    if f.frames / f.samplerate > max_s:
        raise AudioError(
            f"recording is {f.frames / f.samplerate / 3600:.1f} h long; the limit is "
            f"[audio] max_duration_s = {max_s:g} s"
        )


def _decode(f: sf.SoundFile, mix: bool, max_s: float) -> tuple[list[np.ndarray], int, bool]:
    """Decode block by block into 16 kHz tracks: one (the mix) when `mix`, else one per channel.

    Returns the tracks, the source frames decoded, and whether the channels carry one signal.
    """
    sr, n_out = f.samplerate, 1 if mix else f.channels
    stream = None if sr == SAMPLE_RATE else soxr.ResampleStream(sr, SAMPLE_RATE, n_out, "float32")
    # sized from the header, but never past the limit (4 h without one): a lying header grows it
    expected_s = min(f.frames / sr, max_s, 4 * 3600.0)
    tracks = [_Track(int(expected_s * SAMPLE_RATE) + SAMPLE_RATE) for _ in range(n_out)]
    block = max(1, int(BLOCK_S * sr))
    n_read, same, peak = 0, f.channels == 2, 0.0

    def push(x: np.ndarray, last: bool = False) -> None:
        y = stream.resample_chunk(x, last=last) if stream is not None else x
        for c, track in enumerate(tracks):
            track.extend(y[:, c])

    while True:
        try:
            x = f.read(block, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            why = (getattr(e, "error_string", "") or str(e)).removeprefix("Error : ")
            start = n_read / sr
            raise AudioError(
                f"corrupt or truncated audio: {why.strip().rstrip('.')} (between {start:.0f} s "
                f"and {start + BLOCK_S:.0f} s)"
            ) from None
        if not len(x):
            break
        if not np.isfinite(x).all():
            raise AudioError(f"audio holds NaN or infinite samples (near {n_read / sr:.1f} s)")
        n_read += len(x)
        if n_read / sr > max_s:  # a header may not tell the length (or may lie about it)
            raise AudioError(f"recording is longer than [audio] max_duration_s = {max_s:g} s")
        if same:
            peak = max(peak, float(np.abs(x).max()))
            same = float(np.abs(x[:, 0] - x[:, 1]).max()) <= SAME_SIGNAL_TOL
        push(np.ascontiguousarray(x.mean(axis=1, keepdims=True)) if mix else x)
    if stream is not None:
        push(np.zeros((0, n_out), dtype=np.float32), last=True)
    return [t.array() for t in tracks], n_read, same and peak > SILENT_PEAK


def _ogg_last_page(path: Path) -> tuple[bool, int] | None:
    """(end-of-stream flag, granule position) of an Ogg file's last page, None when no whole
    page ends the file.

    An Ogg header holds no length, and libsndfile takes it from whatever page it finds, so a
    cut-off or damaged copy can read as a shorter call. The last page is the one that ends
    exactly at the end of the file (a page is at most 65307 bytes); its granule position is
    the stream's length in samples.
    """
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - 65_307 - 4))
        tail = f.read()
    end = len(tail)
    while (j := tail.rfind(b"OggS", 0, end)) >= 0:
        if len(tail) - j >= 27:
            n_segments = tail[j + 26]
            body = sum(tail[j + 27 : j + 27 + n_segments])
            if j + 27 + n_segments + body == len(tail):
                return bool(tail[j + 5] & 0x04), struct.unpack("<q", tail[j + 6 : j + 14])[0]
        end = j
    return None


def _check_complete(f: sf.SoundFile, path: Path, n_read: int) -> None:
    """A file that ends before its header says is a truncated or damaged copy, not a shorter
    call. (An MP3 without a length header cannot tell: it reads as the shorter call.)"""
    sr = f.samplerate
    promised = f.frames / sr
    if f.format == "OGG":
        last = _ogg_last_page(path)
        if last is None or not last[0]:
            raise AudioError(
                f"truncated audio: the Ogg stream breaks off after {n_read / sr:.1f} s "
                "(no end-of-stream page)"
            )
        if last[1] > 0:  # Opus counts its granules at 48 kHz whatever the rate
            promised = last[1] / (48_000 if f.subtype == "OPUS" else sr)
    if f.format in ("WAV", "WAVEX") and (width := _SAMPLE_BYTES.get(f.subtype)):
        promised = n_read / sr + _wav_shortfall_s(path, sr, f.channels * width)
    if promised - n_read / sr > TRUNCATION_TOL_S:
        raise AudioError(
            f"truncated audio: the header promises {promised:.1f} s but only "
            f"{n_read / sr:.1f} s could be decoded (a cut-off or damaged copy)"
        )


def load_call(
    path: str | Path, layout: ChannelLayout | None = None, options: AudioOptions | None = None
) -> CallAudio:
    """Load a call (docs/CONTRACTS.md, "Input"): stereo is agent-left unless `layout` says
    otherwise; `layout="mono"` on a stereo file mixes the two channels down; a stereo file whose
    channels carry one signal is a mono recording. Raises AudioError with the reason."""
    path = Path(path)
    max_s = options.max_duration_s if options else float("inf")
    min_s = options.min_duration_s if options else MIN_DURATION_S
    with _open(path) as f:
        _check_format(f, layout, max_s)
        sr, n_channels = f.samplerate, f.channels
        tracks, n_read, same = _decode(f, layout == "mono" and n_channels == 2, max_s)
        _check_complete(f, path, n_read)
    if n_read == 0:
        raise AudioError("audio file holds no samples")
    duration = n_read / sr
    if duration < min_s:
        raise AudioError(f"recording too short ({duration:.2f} s; at least {min_s:g} s)")
    if same and layout in ("agent_left", "agent_right"):
        raise AudioError(
            f"manifest says channels={layout} but both channels carry the same signal (a mono "
            "recording saved as stereo): set channels=mono or leave it empty"
        )
    if layout is None:
        layout = "agent_left" if n_channels == 2 and not same else "mono"
    if layout == "mono":
        tracks = tracks[:1]  # the mix, or one of two identical channels
    elif layout == "agent_right":
        tracks = tracks[::-1]
    return CallAudio(
        sr=SAMPLE_RATE,
        duration_s=duration,
        source_sr=sr,
        n_channels=n_channels,
        layout=layout,
        sha256=file_sha256(path),
        tracks=tuple(tracks),
    )
