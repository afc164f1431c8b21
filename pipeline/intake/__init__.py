"""What a run takes in: which recordings (and which manifest) have finished landing, and which
stored recordings are unchanged, told apart without reading them.

A nightly run can start while files are still being copied in. A file modified within
`[run] settle_s`, or whose size or modification time changes between two looks (the run's scan
and the end of its decoding), is "not settled": it is left for the next run and reported, never
failed. A stored call whose file has the size and modification time stored with it is skipped
without reading the file; only when one of them changed is the file hashed, and skipped again
if the hash is unchanged (docs/CONTRACTS.md, "Re-runs"). The nightly fixed cost then grows with
the number of manifest rows (one stat each), not with the bytes of the history.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class NotSettledError(Exception):
    """A recording (or the manifest) is still being written: leave it for the next run."""


@dataclass(frozen=True)
class FileLook:
    """What a stat says of a file: enough to tell "unchanged" without reading it."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class StoredFile:
    """What the database remembers of a call stored ok: its audio hash and, since the nightly
    release, the look of the file it was read from (None for calls stored before)."""

    sha256: str
    look: FileLook | None


def look_at(path: str | Path) -> FileLook:
    st = os.stat(path)
    return FileLook(st.st_size, st.st_mtime_ns)


def unsettled_reason(look: FileLook, now_ns: int, settle_s: float) -> str | None:
    """Why a file must wait for the next run, or None when it may be read now."""
    age_s = (now_ns - look.mtime_ns) / 1e9
    if age_s < settle_s:
        return f"not settled: modified {max(age_s, 0.0):.1f} s ago (settle time {settle_s:g} s)"
    return None


def check_unchanged(path: str | Path, first: FileLook) -> None:
    """Raise NotSettledError when the file changed since `first` (the second look)."""
    try:
        now = look_at(path)
    except FileNotFoundError:
        raise NotSettledError("not settled: the file vanished while it was read") from None
    if now != first:
        raise NotSettledError(
            f"not settled: the file changed while it was read (size {first.size} -> {now.size})"
        )


def is_unchanged(stored: StoredFile | None, look: FileLook) -> bool:
    """A stored call whose file looks exactly as it did: skipped without reading it."""
    return stored is not None and stored.look == look
