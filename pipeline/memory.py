"""Handing freed memory back to the operating system between chunks of a long run."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable


def _libc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


_MALLOC_TRIM = _libc_trim()  # glibc only; None on macOS and musl, where this is a no-op


def release_freed_memory() -> None:
    """Collect garbage, then ask glibc to unmap the free pages of every heap arena.

    glibc keeps freed blocks mapped in each thread's arena, and a run's worker threads free
    audio arrays and batch buffers of changing sizes chunk after chunk: without this, a run's
    resident memory creeps upward with the number of chunks though nothing is kept.
    """
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
