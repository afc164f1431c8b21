"""Read a CTranslate2 model.bin (binary version 6) into numpy arrays, without CTranslate2.

The Whisper weights reachable here are a CTranslate2 conversion split over two registry
packages; this reader parses the concatenated parts so convert.py can rename the tensors back
onto openai-whisper's state dict. Layout (little-endian), as CTranslate2's ModelSpec writes it:

    u32 version | str spec name | u32 spec revision
    u32 n | n x (str name, u8 rank, rank x u32 dim, u8 dtype id, u32 nbytes, bytes)
    u32 n | n x (str alias, str target)

where str is a u16 length (counting a trailing NUL) followed by the UTF-8 bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CT2_BINARY_VERSION = 6
# CTranslate2 dtype ids -> numpy dtypes (little-endian). bfloat16 has no numpy dtype: it is
# read as uint16 and widened to float32 below.
_CT2_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16
}
_BF16 = 5


class CT2FormatError(ValueError):
    """model.bin is not a CTranslate2 file this reader understands (or it is truncated)."""


class _Reader:
    """Cursor over the model bytes; every read is bounds-checked so truncation is reported."""

    def __init__(self, buf: bytearray) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> int:
        """Reserve n bytes and return their offset."""
        if self.pos + n > len(self.buf):
            raise CT2FormatError(
                f"truncated model.bin: needed {n} bytes for {what} at offset {self.pos}, "
                f"file has {len(self.buf)}"
            )
        start = self.pos
        self.pos += n
        return start

    def unpack(self, fmt: str, what: str) -> int:
        size = struct.calcsize("<" + fmt)
        return struct.unpack_from("<" + fmt, self.buf, self.take(size, what))[0]

    def string(self, what: str) -> str:
        n = self.unpack("H", what)
        start = self.take(n, what)
        return bytes(self.buf[start : start + n]).rstrip(b"\0").decode("utf-8")


def _read_concatenated(paths: Sequence[Path]) -> bytearray:
    """Read the split parts straight into one preallocated buffer (a single 150 MB copy)."""
    buf = bytearray(sum(p.stat().st_size for p in paths))
    view = memoryview(buf)
    pos = 0
    for p in paths:
        with p.open("rb") as f:
            while n := f.readinto(view[pos:]):
                pos += n
    if pos != len(buf):
        raise CT2FormatError(f"read {pos} bytes, expected {len(buf)}: a part changed while reading")
    return buf


def read_ct2(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse a CTranslate2 model.bin into ({name: array}, {alias: target}).

    `path` is one file or the ordered list of its split parts. Tensor arrays are read-only views
    into one shared buffer (no per-tensor copy); config scalars come back as 0-d arrays.
    """
    paths = [Path(path)] if isinstance(path, str | os.PathLike) else [Path(p) for p in path]
    buf = _read_concatenated(paths)
    r = _Reader(buf)

    version = r.unpack("I", "binary version")
    if version != CT2_BINARY_VERSION:
        raise CT2FormatError(
            f"unsupported CTranslate2 binary version {version} (this reader handles "
            f"{CT2_BINARY_VERSION}); is {paths[0]} a model.bin?"
        )
    r.string("spec name")  # "WhisperSpec"; the tensor names say everything we need
    r.unpack("I", "spec revision")

    variables: dict[str, np.ndarray] = {}
    for i in range(r.unpack("I", "variable count")):
        name = r.string(f"name of variable {i}")
        rank = r.unpack("B", f"rank of {name}")
        shape = tuple(r.unpack("I", f"shape of {name}") for _ in range(rank))
        dtype_id = r.unpack("B", f"dtype of {name}")
        nbytes = r.unpack("I", f"byte count of {name}")
        if dtype_id not in _CT2_DTYPES:
            raise CT2FormatError(f"{name}: unknown dtype id {dtype_id}")
        dtype = _CT2_DTYPES[dtype_id]
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize != nbytes:
            raise CT2FormatError(
                f"{name}: {nbytes} bytes do not fit shape {shape} of {dtype} "
                f"({count * dtype.itemsize} expected)"
            )
        start = r.take(nbytes, f"data of {name}")
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=start).reshape(shape)
        if dtype_id == _BF16:
            arr = (arr.astype("<u4") << 16).view("<f4")  # bfloat16 = top half of a float32
        arr.flags.writeable = False  # views of the shared buffer: never mutate in place
        variables[name] = arr

    aliases: dict[str, str] = {}
    for i in range(r.unpack("I", "alias count")):
        alias = r.string(f"alias {i}")
        aliases[alias] = r.string(f"target of alias {alias}")
    if r.pos != len(buf):
        raise CT2FormatError(f"{len(buf) - r.pos} unexpected bytes after the alias table")
    return variables, aliases
