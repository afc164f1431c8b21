"""Torch thread settings for small sequential models."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_lock = threading.Lock()
_inside = 0  # blocks currently running single-threaded, in any thread
_saved = 0  # the process-wide count before the first of them


@contextmanager
def single_thread() -> Iterator[None]:
    """Run a block on one torch thread, then restore the process-wide count.

    Small per-step ops (silero-vad's window loop, the GE2E LSTM) spend most of their time
    waiting on each other with several threads on a busy 2-core machine (measured: VAD 1.3 s on
    one thread vs 8 s on two for a 73 s channel; GE2E 1.1 s vs 19 s for 187 windows).

    torch's thread count is one setting for the whole process, and calls are prepared
    concurrently: the first block in saves the count and the last one out restores it, so
    overlapping blocks never leave the process stuck on one thread.
    """
    global _inside, _saved
    with _lock:
        if _inside == 0:
            _saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0:
                torch.set_num_threads(_saved)
