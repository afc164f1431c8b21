"""Analysts never block the run, and the run never blocks analysts.

DuckDB allows one writer or several readers per file, so the run never opens the analysts'
file for writing. It writes to its own working file beside it (`<db>.work`), one transaction per
call, and when the run has finished (derived tables included) it publishes a consistent copy:
checkpoint, copy to `<db>.publishing` (a copy-on-write clone where the file system offers one),
fsync, then an atomic rename over `<db>`. A reader that has the old file open keeps the snapshot
it opened (on Linux the rename leaves its inode alone); the next reader opens the new one. A crash at any moment leaves the working file with every
committed call (DuckDB replays its WAL) and the published file untouched; the next run resumes
from the working file and publishes. What the command line writes into the published file
between runs (calibration imports, coaching events) is carried into the working file when a run
starts (KEPT_FROM_PUBLISHED), so publishing does not lose it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import duckdb

from pipeline.store.db import StoreLockedError, connect, transaction

WORK_SUFFIX = ".work"
# Tables the command line writes into the published file (calibration imports, coaching events
# and the outcomes recomputed with them), carried into the working file when a run starts.
KEPT_FROM_PUBLISHED = (
    "calibration_scores",
    "calibration_imports",
    "coaching_events",
    "coaching_results",
)
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
        copy_file(db, work)
    try:
        con = connect(work)
    except StoreLockedError as e:
        raise StoreLockedError(
            f"another run is writing {db} (its working file {work} is "
            f"locked); wait for it to finish.\n{e}"
        ) from e
    if db.exists():
        _take_published(con, db)
    return con


def _take_published(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """Bring the command line's writes into the working file. `calibrate import` and `calibrate
    session` write the published file (the one users name); the run never writes those tables,
    so at its start the published rows are the ones in force. Without this, a working file kept
    from the last run would publish over them and lose them."""
    try:
        con.execute("ATTACH ? AS published (READ_ONLY)", [str(db)])
    except duckdb.Error as e:
        con.close()
        raise StoreLockedError(f"cannot read {db} to carry its calibration scores over: {e}") from e
    try:
        have = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'published'"
            ).fetchall()
        }
        with transaction(con):
            for table in (t for t in KEPT_FROM_PUBLISHED if t in have):
                con.execute(f"DELETE FROM main.{table}")
                con.execute(f"INSERT INTO main.{table} BY NAME SELECT * FROM published.{table}")
    finally:
        con.execute("DETACH published")


def publish(con: duckdb.DuckDBPyConnection, db: str | Path) -> Path:
    """Close the run's connection and atomically replace the analysts' file with a copy."""
    db = Path(db)
    work = working_path(db)
    con.execute("CHECKPOINT")  # everything in the main file, nothing left in the WAL
    con.close()
    tmp = Path(str(db) + PUBLISHING_SUFFIX)
    copy_file(work, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, db)
    _fsync_dir(db.parent)
    return db


# Linux's FICLONE ioctl: the copy shares the source's blocks until either is written
# (copy-on-write), so publishing a multi-GB history costs no copy where the file system has it.
FICLONE = 0x40049409


def copy_file(src: Path, dst: Path) -> None:
    """A copy of src at dst: a copy-on-write clone where the file system makes one (btrfs, XFS
    with reflink, bcachefs), else an ordinary full copy (ext4, tmpfs, other systems). Either is
    a separate file: the run's later writes to src never show in dst."""
    with open(src, "rb") as s, open(dst, "wb") as d:
        try:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
            return
        except OSError:
            pass  # no reflink here (EOPNOTSUPP, EXDEV, EINVAL...): copy the bytes
    shutil.copyfile(src, dst)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
