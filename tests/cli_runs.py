"""`callreview run` in a child process, for the end-to-end tests that kill it or compare runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CLI = [sys.executable, "-m", "callreview.cli"]


def start_run(
    folder: Path, db: Path, flags: tuple[str, ...] = (), **settings: str
) -> subprocess.Popen:
    """Start `callreview run FOLDER` into `db`, with [run] settings as CALLREVIEW_RUN__* values,
    in a session of its own (so a test can kill -9 the run and its Prefect server at once)."""
    env = {**os.environ, "CALLREVIEW_DB": str(db)}
    env.update({f"CALLREVIEW_RUN__{k.upper()}": v for k, v in settings.items()})
    return subprocess.Popen(
        [*CLI, "run", str(folder), *flags],
        cwd=folder.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    """Wait for a run that must succeed; its output on one line (the console wraps lines)."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return " ".join(out.split())


def differences(before: Path, after: Path) -> list[str]:
    """scripts/compare_dbs.py's differences between two databases, the runs table aside."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from compare_dbs import compare
    finally:
        sys.path.pop(0)
    return [p for p in compare(str(before), str(after)) if not p.startswith("runs")]
