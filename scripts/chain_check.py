"""The same calls through two recording chains: which figures move with the chain, not the agent.

An agent's early calls are the sample calls as an old PBX stored them (G.711 mu-law at 8 kHz,
6 dB quieter); their current calls are the same recordings as a newer chain stores them
(16 kHz FLAC, 8 dB louder, brighter, through a soft limiter). Same speech, same words: any
drift the table shows is the chain's. `callreview run` processes them as a user would, and the
script prints every figure's early-to-current effect size with its catalogue kind.

    .venv/bin/python scripts/chain_check.py                 # all 18 sample calls
    .venv/bin/python scripts/chain_check.py --calls 4       # the first 4 (what the test uses)

tests/test_recording_chain.py runs it on a few calls and holds the behaviour figures under a
medium effect (|d| < 0.5).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import scipy.signal
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.catalogue import DEFAULT_PATH, load_catalogue, lookup  # noqa: E402

SAMPLES = ROOT / "sample_audio"
AGENT = "R01"
HIRED = "2024-01-01"


def _mulaw(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """8-bit mu-law encode and decode (G.711 companding), full scale 1.0."""
    x = np.clip(x, -1.0, 1.0)
    y = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127.0) / 127.0
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


def old_chain(audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """An old PBX: telephone band, 8 kHz, 6 dB down, mu-law."""
    sos = scipy.signal.butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos")
    y = scipy.signal.sosfilt(sos, audio, axis=0)
    y = soxr.resample(y, rate, 8000) if rate != 8000 else y
    return _mulaw(y * 10 ** (-6 / 20)), 8000


def new_chain(audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """A newer, louder chain: 16 kHz, +8 dB, a 3 dB lift above 2 kHz, a soft limiter."""
    y = soxr.resample(audio, rate, 16000) if rate != 16000 else audio
    sos = scipy.signal.butter(2, 2000, btype="highpass", fs=16000, output="sos")
    y = y + (10 ** (3 / 20) - 1) * scipy.signal.sosfilt(sos, y, axis=0)
    y = y * 10 ** (8 / 20)
    return (np.tanh(1.5 * y) / np.tanh(1.5)).astype(np.float32), 16000


def build_folder(folder: Path, n_calls: int) -> list[str]:
    """The first `n_calls` sample calls twice: early through the old chain, current through the
    new one, one agent; writes the recordings and manifest.csv. Returns the source call ids."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(SAMPLES / "manifest.csv", encoding="utf-8") as f:
        sources = list(csv.DictReader(f))[:n_calls]
    rows = []
    for i, src in enumerate(sources):
        audio, rate = sf.read(SAMPLES / src["path"], dtype="float32", always_2d=True)
        for cohort, chain, day, fmt in (
            ("early", old_chain, f"2024-01-{10 + i:02d}", ("wav", "ULAW")),
            ("current", new_chain, f"2026-10-{1 + i:02d}", ("flac", "PCM_16")),
        ):
            y, r = chain(audio, rate)
            name = f"{cohort}-{src['call_id']}.{fmt[0]}"
            sf.write(folder / name, y, r, subtype=fmt[1])
            rows.append(
                {
                    **src,
                    "path": name,
                    "call_id": f"{cohort}-{src['call_id']}",
                    "agent_id": AGENT,
                    "recorded_at": f"{day}T10:00:00",
                    "agent_hired_at": HIRED,
                }
            )
    with open(folder / "manifest.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [s["call_id"] for s in sources]


def run(folder: Path, db: Path, timeout: float = 1800) -> None:
    """`callreview run FOLDER` in a child process, as a user runs it."""
    env = {**os.environ, "CALLREVIEW_DB": str(db), "CALLREVIEW_RUN__SETTLE_S": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "callreview.cli", "run", str(folder)],
        cwd=folder.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"callreview run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@dataclass(frozen=True)
class Moved:
    metric: str
    kind: str
    direction: int
    delta: float | None
    effect_size: float | None


def drift(db: Path) -> list[Moved]:
    """The agent's agent_drift rows with their catalogue kind, largest |d| first."""
    catalogue = load_catalogue(DEFAULT_PATH)
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT metric, delta, effect_size FROM agent_drift WHERE agent_id = ?", [AGENT]
        ).fetchall()
    finally:
        con.close()
    out = []
    for metric, delta, d in rows:
        info = lookup(catalogue, metric)
        clean = [None if v is None or np.isnan(v) else float(v) for v in (delta, d)]
        out.append(Moved(metric, info.kind, info.direction, clean[0], clean[1]))
    return sorted(out, key=lambda m: -abs(m.effect_size or 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=18, help="sample calls to use (default all)")
    parser.add_argument("--workdir", type=Path, help="keep the folder and database here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        build_folder(work / "calls", args.calls)
        run(work / "calls", work / "chain.duckdb")
        print(f"{'metric':34} {'kind':10} {'dir':>3} {'delta':>9} {'d':>7}")
        for m in drift(work / "chain.duckdb"):
            d = "" if m.effect_size is None else f"{m.effect_size:+.2f}"
            delta = "" if m.delta is None else f"{m.delta:+.3g}"
            mark = " <- medium or more" if m.effect_size and abs(m.effect_size) >= 0.5 else ""
            print(f"{m.metric:34} {m.kind:10} {m.direction:>3} {delta:>9} {d:>7}{mark}")


if __name__ == "__main__":
    main()
