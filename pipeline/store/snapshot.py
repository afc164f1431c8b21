"""Analysts never block the run, and the run never blocks analysts.

DuckDB allows one writer or several readers per file, so the run never opens the analysts'
file for writing. It writes to its own working file beside it (`<db>.work`), one transaction per
call, and when the run has finished (derived tables included) it publishes a consistent copy:
checkpoint, copy to `<db>.publishing`, fsync, then an atomic rename over `<db>`. A reader that
has the old file open keeps the snapshot it opened (on Linux the rename leaves its inode alone);
the next reader opens the new one. A crash at any moment leaves the working file with every
committed call (DuckDB replays its WAL) and the published file untouched; the next run resumes
from the working file and publishes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

from pipeline.store.db import StoreLockedError, connect

WORK_SUFFIX = ".work"
PUBLISHING_SUFFIX = ".publishing"


def working_path(db: str | Path) -> Path:
    return Path(str(db) + WORK_SUFFIX)


def open_for_run(db: str | Path) -> duckdb.DuckDBPyConnection:
    """The run's private read-write connection, on the working file.

    The first run seeds the working file from the published one (history carries over); a run
    after a crash finds the working file as the crash left it, committed calls intact.
    """
    db, work = Path(db), working_path(db)
    Path(str(db) + PUBLISHING_SUFFIX).unlink(missing_ok=True)  # a publish a crash cut short
    if not work.exists() and db.exists():
        shutil.copyfile(db, work)
    try:
        return connect(work)
    except StoreLockedError as e:
        raise StoreLockedError(
            f"another run is writing {db} (its working file {work} is "
            f"locked); wait for it to finish.\n{e}"
        ) from e


def publish(con: duckdb.DuckDBPyConnection, db: str | Path) -> Path:
    """Close the run's connection and atomically replace the analysts' file with a copy."""
    db = Path(db)
    work = working_path(db)
    con.execute("CHECKPOINT")  # everything in the main file, nothing left in the WAL
    con.close()
    tmp = Path(str(db) + PUBLISHING_SUFFIX)
    shutil.copyfile(work, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, db)
    _fsync_dir(db.parent)
    return db


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
