"""The database at a call centre's volume: bulk write, a nightly increment, analysts' queries.

A large centre's history is generated through the store's own write path (pipeline/store:
`connect` builds the schema, `write_frame` inserts by column name through DuckDB's pandas scan,
in batches; the benchmark runs no SQL of its own to write): by default 100,000 calls of 2,000
agents over two years, 100 utterances each (10 million), no audio. Figures and texts are those
of a real run (the sample calls' database, made first when not given), resampled per utterance
and call with 5% multiplicative jitter, so distributions, text lengths and phrase hits are
realistic (each text gets a random numeric suffix so that no two are the same). Then, each in a
process of its own so its peak memory is its own:

  1. bulk write of the history (time, rows per second, file size);
  2. a nightly increment: 5,000 calls spread over 1,000 agents written the same way, then what a
     run does after its chunks: the derived tables (store.load_history -> review.derive_tables ->
     store.replace_derived) and the publish (store.publish); time and peak RSS of each step;
  3. analysts' typical queries on the published file, read-only, each timed (best of 3):
     agent_drift for all agents, one agent's trend by month, the 20 agents whose agitation rose
     most this month against their early calls, a text search over every utterance (a scan).

With --derive-history the history stage also derives every agent's tables once, as the runs that
stored it did, so the increment finds its agents' earlier calls already detected (the stored
behaviour detection it keeps); without it every call of the increment's agents is detected.

Targets (the scale issue): 1. under 60 s for 10 million utterances; 2. under 30 s and 4 GB for
the derived update and publish; 3. each query under 1 s.

    .venv/bin/python scripts/bench_volume.py                      # 100,000 calls (minutes)
    .venv/bin/python scripts/bench_volume.py --calls 10000 --agents 200 --increment 500
    .venv/bin/python scripts/bench_volume.py --calls 4000 --agents 80 --increment 200 --derive-history
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_nightly import cpu_model  # noqa: E402  (the CPU model, from lscpu)

from pipeline import review, store  # noqa: E402
from pipeline.config import Config, default_config  # noqa: E402
from pipeline.records import CallTextWork, Utterance  # noqa: E402
from pipeline.rows import RunRow  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
UTTERANCES_PER_CALL = 100
BATCH_CALLS = 5_000
JITTER = 0.05
START = pd.Timestamp("2024-01-01")
DAYS = 730

QUERIES = {
    "agent_drift, all agents": "SELECT * FROM agent_drift ORDER BY agent_id, metric",
    "one agent's trend by month": """
        SELECT date_trunc('month', recorded_at) AS month, count(*) AS calls,
               avg(agitation) AS agitation, avg(agent_speech_rate_cpm) AS speech_rate
        FROM call_metrics m JOIN calls c USING (call_id)
        WHERE m.agent_id = 'A0007' GROUP BY ALL ORDER BY month""",
    "20 agents whose agitation rose most this month": """
        WITH month AS (
          SELECT m.agent_id, avg(m.agitation) AS now
          FROM call_metrics m JOIN calls c USING (call_id)
          WHERE c.recorded_at >= (SELECT max(recorded_at) FROM calls) - INTERVAL 30 DAY
          GROUP BY ALL)
        SELECT agent_id, now - early_mean AS rise
        FROM month JOIN agent_drift d USING (agent_id)
        WHERE d.metric = 'agitation' ORDER BY rise DESC NULLS LAST LIMIT 20""",
    "text search over every utterance (a full scan: every match counted)": """
        SELECT agent_id, count(*) AS hits FROM utterance_log JOIN call_log USING (call_id)
        WHERE text LIKE '%已经说得很明白%' GROUP BY ALL ORDER BY hits DESC""",
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def source_tables(source: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    con = store.connect(source, read_only=True)
    try:
        utts = con.sql("SELECT * FROM utterance_log").df()
        figs = con.sql(
            "SELECT f.* FROM call_figures f JOIN call_log l USING (call_id) WHERE status = 'ok'"
        ).df()
    finally:
        con.close()
    return utts, figs


def _jitter(frame: pd.DataFrame, rng: np.random.Generator, keep: set[str]) -> pd.DataFrame:
    for col in frame.columns:
        if col in keep or frame[col].dtype.kind != "f":
            continue
        frame[col] = frame[col] * rng.lognormal(0.0, JITTER, len(frame))
    return frame


def make_batch(
    rng: np.random.Generator,
    first: int,
    n_calls: int,
    agents: np.ndarray,
    day_range: tuple[int, int],
    utts: pd.DataFrame,
    figs: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """n_calls calls (ids from `first`) of the given agents, as the store's frames."""
    ids = np.array([f"V{first + k:07d}" for k in range(n_calls)])
    agent = rng.choice(agents, n_calls)
    day = rng.integers(day_range[0], day_range[1], n_calls)
    recorded = (
        START
        + pd.to_timedelta(day, unit="D")
        + pd.to_timedelta(rng.integers(8 * 3600, 20 * 3600, n_calls), unit="s")
    )
    # agents were hired in the two months before the history starts (A0042 -> 42 % 60 days)
    hired = START - pd.to_timedelta(np.char.lstrip(agent.astype(str), "A").astype(int) % 60, "D")
    topics = np.array(["refund", "billing", "delivery_delay", "account_update", "complaint"])
    n_utt = n_calls * UTTERANCES_PER_CALL
    u = utts.iloc[rng.integers(0, len(utts), n_utt)].reset_index(drop=True)
    u = _jitter(u, rng, keep={"start_s", "end_s"})
    duration = (u["end_s"] - u["start_s"]).clip(lower=0.3).to_numpy()
    gaps = rng.uniform(0.2, 1.5, n_utt)
    starts = np.cumsum((duration + gaps).reshape(n_calls, UTTERANCES_PER_CALL), axis=1)
    starts = (starts - duration.reshape(n_calls, UTTERANCES_PER_CALL)).reshape(-1)
    # every text distinct, as real transcripts are (resampled ones would compress to a
    # dictionary of a few hundred strings and make scans unrealistically cheap)
    u["text"] = u["text"] + pd.Series(rng.integers(0, 10**6, n_utt)).astype(str).radd("#")
    u["call_id"] = np.repeat(ids, UTTERANCES_PER_CALL)
    u["utterance_id"] = np.tile(np.arange(UTTERANCES_PER_CALL), n_calls)
    u["speaker"] = np.where(u["utterance_id"] % 2 == 0, "agent", "customer")
    u["start_s"] = starts
    u["end_s"] = starts + duration
    f = _jitter(figs.iloc[rng.integers(0, len(figs), n_calls)].reset_index(drop=True), rng, set())
    f["call_id"] = ids
    calls = pd.DataFrame(
        {
            "call_id": ids,
            "agent_id": agent,
            "recorded_at": recorded,
            "agent_hired_at": hired.date,
            "topic": rng.choice(topics, n_calls),
            "channels": "agent_left",
            "folder": "/data/recordings",
            "path": np.char.add(ids.astype(str), ".ogg"),
            "audio_sha256": [f"{rng.integers(0, 2**63):016x}" for _ in range(n_calls)],
            "duration_s": u.groupby("call_id", sort=False)["end_s"].max().to_numpy(),
            "status": "ok",
            "error": None,
            "run_id": "volume",
            "processed_at": pd.Timestamp.now(),
            "attributes": "{}",
            "pipeline_version": "volume",
            "asr_model": "volume",
            "masker_version": 2,
        }
    )
    return {"call_log": calls, "utterance_log": u, "call_figures": f}


def write_calls(
    db: Path,
    source: Path,
    n_calls: int,
    first: int,
    agents: np.ndarray,
    day_range: tuple[int, int],
    seed: int,
    run_id: str = "volume",
    config: Config | None = None,
) -> dict:
    """Generated calls written through the store; with `config`, each call's own-text work too
    (review.text_work), as a run does where it measures the call, timed apart: on a cluster it
    runs on the workers, in parallel with transcription."""
    utts, figs = source_tables(source)
    rng = np.random.default_rng(seed)
    con = store.connect(db)
    seconds = text_s = 0.0
    n_utt = 0
    try:
        for start in range(0, n_calls, BATCH_CALLS):
            frames = make_batch(
                rng, first + start, min(BATCH_CALLS, n_calls - start), agents, day_range, utts, figs
            )
            frames["call_log"]["run_id"] = run_id
            t0 = time.perf_counter()
            works = _text_work(frames["utterance_log"], config) if config else {}
            t1 = time.perf_counter()
            with store.transaction(con):
                for table in ("call_log", "utterance_log", "call_figures"):
                    store.write_frame(con, table, frames[table])
                if works:
                    store.save_text_work(con, list(works), works)
            seconds += time.perf_counter() - t1
            text_s += t1 - t0
            n_utt += len(frames["utterance_log"])
        con.execute("CHECKPOINT")
    finally:
        con.close()
    out = {"calls": n_calls, "utterances": n_utt, "write_s": round(seconds, 1)}
    return out | ({"text_work_s": round(text_s, 1)} if config else {})


def _text_work(utts: pd.DataFrame, config: Config) -> dict[str, CallTextWork]:
    out = {}
    for call_id, g in utts.groupby("call_id", sort=False):
        rows = zip(
            g["utterance_id"], g["speaker"], g["start_s"], g["end_s"], g["text"], strict=True
        )
        out[call_id] = review.text_work(
            [Utterance(call_id, int(i), sp, a, b, t) for i, sp, a, b, t in rows], config
        )
    return out


def stage_history(args: argparse.Namespace) -> dict:
    agents = np.array([f"A{k:04d}" for k in range(args.agents)])
    out = write_calls(args.db, args.source, args.calls, 0, agents, (0, DAYS - 1), 1)
    out["utterances_per_s"] = round(out["utterances"] / max(out["write_s"], 1e-9))
    if args.derive_history:  # as the run that stored the history left it: derived tables in
        config = default_config()
        con = store.connect(args.db)
        try:
            t0 = time.perf_counter()
            review.update_derived(con, None, config, None)
            out["derive_history_s"] = round(time.perf_counter() - t0, 1)
            con.execute("CHECKPOINT")
        finally:
            con.close()
    out["db_mb"] = round(args.db.stat().st_size / 2**20)
    out["peak_rss_mb"] = round(peak_rss_mb())
    return out


def stage_increment(args: argparse.Namespace) -> dict:
    agents = np.array([f"A{k:04d}" for k in range(min(1000, args.agents))])
    store.open_for_run(args.db).close()  # the run's working file, as a run finds it
    work = store.working_path(args.db)
    finished = pd.Timestamp.now()  # the history's last finished run (store.last_finished)
    config = default_config()
    settings = review.settings_fingerprint(config, review.versions())
    con = store.connect(work)
    try:  # the night's run, with today's settings
        store.start_run(
            con,
            RunRow("night", datetime.now(), None, "/data/recordings", args.increment, None,
                   None, None, "volume", "cpu", "{}", "running", settings),
        )  # fmt: skip
    finally:
        con.close()
    out = write_calls(
        work, args.source, args.increment, args.calls, agents, (DAYS - 1, DAYS), 2, "night", config
    )
    con = store.open_for_run(args.db)
    t0 = time.perf_counter()
    # as a run after a finished one (flows/review.py): the agents of the night's calls, their
    # derived tables recomputed a batch at a time, the stored per-call text work of the calls
    # before it kept
    since = finished.to_pydatetime()
    touched = store.agents_of_calls_after(con, since)
    batches = len(store.agent_batches(con, touched, config.run.derive_batch_calls))
    derived_rows = review.update_derived(con, touched, config, since, settings_sha256=settings)
    t1 = time.perf_counter()
    store.publish(con, args.db)
    t2 = time.perf_counter()
    out.update(
        derive_s=round(t1 - t0, 1),
        publish_s=round(t2 - t1, 1),
        derived_update_and_publish_s=round(t2 - t0, 1),
        peak_rss_mb=round(peak_rss_mb()),
        derived_rows=derived_rows,
        agents_recomputed=len(touched),
        calls_of_those_agents=derived_rows.get("call_derived", 0),
        derive_batches=batches,
    )
    return out


def stage_queries(args: argparse.Namespace) -> dict:
    out = {}
    con = store.connect(args.db, read_only=True)
    try:
        for name, sql in QUERIES.items():
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                rows = con.execute(sql).fetchall()
                best = min(best, time.perf_counter() - t0)
            out[name] = {"s": round(best, 3), "rows": len(rows)}
    finally:
        con.close()
    return out


def _stage(name: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable, __file__, "--stage", name, "--db", str(args.db), "--source",
        str(args.source), "--calls", str(args.calls), "--agents", str(args.agents),
        "--increment", str(args.increment), *(["--derive-history"] if args.derive_history else []),
    ]  # fmt: skip
    print(f"[volume] {name}", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _source(tmp: Path) -> Path:
    db = tmp / "samples.duckdb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "callreview.cli",
            "run",
            str(ROOT / "sample_audio"),
            "--db",
            str(db),
        ],
        check=True,
        cwd=tmp,
        capture_output=True,
    )
    return db


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--agents", type=int, default=2_000)
    p.add_argument("--increment", type=int, default=5_000)
    p.add_argument("--source", type=Path, default=None, help="a real run's database")
    p.add_argument("--db", type=Path, default=None)
    p.add_argument("--stage", choices=["history", "increment", "queries"], default=None)
    p.add_argument(
        "--derive-history",
        action="store_true",
        help="derive every agent's tables after writing the history, as the runs that stored it "
        "did, so the increment finds the stored detection of its agents' earlier calls",
    )
    args = p.parse_args()
    if args.stage:
        stage = {"history": stage_history, "increment": stage_increment, "queries": stage_queries}
        print(json.dumps(stage[args.stage](args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="callreview-volume-") as tmp:
        tmp = Path(tmp)
        args.source = args.source or _source(tmp)
        args.db = args.db or tmp / "volume.duckdb"
        result = {
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv),
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "history": _stage("history", args),
            "increment": _stage("increment", args),
            "queries": _stage("queries", args),
        }
    h, i, q = result["history"], result["increment"], result["queries"]
    lines = [
        f"CPU: {result['cpu']} ({result['cpus']} cores); {h['calls']:,} calls of "
        f"{args.agents:,} agents, {h['utterances']:,} utterances (database {h['db_mb']} MB)",
        "",
        "| step | figure | target |",
        "|---|---|---|",
        f"| bulk write, {h['utterances']:,} utterances | {h['write_s']} s "
        f"({h['utterances_per_s']:,}/s) | < 60 s |",
        *(
            [
                f"| derive every agent's tables once (--derive-history) | {h['derive_history_s']} s | |"
            ]
            if "derive_history_s" in h
            else []
        ),
        f"| increment: write {i['calls']:,} calls | {i['write_s']} s | |",
        f"| increment: its calls' own-text work (review.text_work: pairing words, behaviour "
        f"detection; in a run, done per call where it is measured) | {i['text_work_s']} s | |",
        f"| increment: derived tables of its {i['agents_recomputed']:,} agents "
        f"({i['calls_of_those_agents']:,} calls in {i['derive_batches']} batches; load, derive, replace) | {i['derive_s']} s | |",
        f"| increment: publish | {i['publish_s']} s | |",
        f"| derived update and publish | {i['derived_update_and_publish_s']} s, peak "
        f"{i['peak_rss_mb']:,} MB | < 30 s, < 4,096 MB |",
        *(f"| query: {name} | {v['s']} s ({v['rows']} rows) | < 1 s |" for name, v in q.items()),
    ]
    table = "\n".join(lines)
    print(table)
    result["table"] = table
    out = RESULTS_DIR / (time.strftime("%Y-%m-%d") + f"-volume-{args.calls}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
