"""Compare two callreview databases row by row: did a change alter what a run stores?

    .venv/bin/python scripts/compare_dbs.py before.duckdb after.duckdb

Every analyst-facing table and view is compared on its shared columns, ignoring the columns
that differ between any two runs (run ids, timestamps, the folder, package versions). Floats
are compared to 1e-9 relative. Prints one line per table and every difference found (first 10
per table); exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import sys

import duckdb
import numpy as np
import pandas as pd

NAMES = (
    "calls",
    "utterances",
    "call_metrics",
    "agent_baselines",
    "agent_drift",
    "call_pairs",
    "aligned_utterances",
    "failures",
    "runs",
)
VOLATILE = {
    "run_id",
    "processed_at",
    "started_at",
    "finished_at",
    "failed_at",
    "folder",
    "versions",
    "asr_model",
    "device",
}
KEYS = {
    "calls": ["call_id"],
    "utterances": ["call_id", "utterance_id"],
    "call_metrics": ["call_id"],
    "agent_baselines": ["agent_id"],
    "agent_drift": ["agent_id", "metric"],
    "call_pairs": ["pair_id"],
    "aligned_utterances": ["pair_id", "early_utterance_id"],
    "failures": ["stage", "call_id", "manifest_line", "reason"],
    "runs": ["n_inputs", "n_ok", "n_failed", "n_skipped", "status"],
}


def _frame(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame | None:
    try:
        return con.sql(f"SELECT * FROM {name}").df()
    except duckdb.Error:
        return None


def _same(a: object, b: object) -> bool:
    if pd.isna(a) and pd.isna(b):
        return True
    if isinstance(a, float | np.floating) and isinstance(b, float | np.floating):
        return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12))
    return a == b


def compare(before: str, after: str) -> list[str]:
    problems: list[str] = []
    a_con = duckdb.connect(before, read_only=True)
    b_con = duckdb.connect(after, read_only=True)
    for name in NAMES:
        a, b = _frame(a_con, name), _frame(b_con, name)
        if a is None or b is None:
            problems.append(f"{name}: missing in {'before' if a is None else 'after'}")
            continue
        only_a = sorted(set(a.columns) - set(b.columns) - VOLATILE)
        only_b = sorted(set(b.columns) - set(a.columns) - VOLATILE)
        cols = [c for c in a.columns if c in b.columns and c not in VOLATILE]
        keys = [k for k in KEYS[name] if k in cols]
        a = a[cols].sort_values(keys).reset_index(drop=True)
        b = b[cols].sort_values(keys).reset_index(drop=True)
        found: list[str] = []
        if len(a) != len(b):
            found.append(f"{len(a)} rows before, {len(b)} after")
        else:
            for i in range(len(a)):
                for c in cols:
                    if not _same(a.at[i, c], b.at[i, c]):
                        key = ", ".join(f"{k}={a.at[i, k]}" for k in keys)
                        found.append(f"[{key}] {c}: {a.at[i, c]!r} -> {b.at[i, c]!r}")
        status = "same" if not found else f"{len(found)} differences"
        extra = (f"; columns only before: {only_a}" if only_a else "") + (
            f"; new columns: {only_b}" if only_b else ""
        )
        print(f"{name:20s} {len(a):5d} rows  {status}{extra}")
        problems += [f"{name}: {f}" for f in found[:10]]
        if only_a:
            problems.append(f"{name}: columns dropped: {only_a}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args()
    problems = compare(args.before, args.after)
    for p in problems:
        print("  " + p)
    print("identical" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
