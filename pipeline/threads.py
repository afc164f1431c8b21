"""Torch thread settings for small sequential models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_thread() -> Iterator[None]:
    """Run a block on one torch thread, then restore the process-wide count.

    Small per-step ops (silero-vad's window loop, the GE2E LSTM) spend most of their time
    waiting on each other with several threads on a busy 2-core machine (measured: VAD 1.3 s on
    one thread vs 8 s on two for a 73 s channel; GE2E 1.1 s vs 19 s for 187 windows).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
