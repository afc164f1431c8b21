"""The review stages as plain functions, in data-flow order. flows/review.py wraps them in
Prefect tasks; tests and notebooks can call them directly.

  process_call:    recording -> audio -> VAD -> transcript -> per-call metrics  (CallResult)
  save_call:       CallResult -> DuckDB base tables
  rebuild_derived: DuckDB base tables -> cohorts, agitation, pairs, alignment, drift
"""

from __future__ import annotations

import platform
from dataclasses import asdict, fields
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

import duckdb
import pandas as pd
import whisper

from pipeline import align, derive, store
from pipeline.audio import load_call
from pipeline.metrics import measure_call
from pipeline.records import CallFigures, CallInput, CallResult
from pipeline.transcribe import transcribe_calls
from pipeline.vad import find_segments

# Call-level metrics that agent_drift summarises: every numeric figure plus the derived ones.
DRIFT_METRICS = [f.name for f in fields(CallFigures) if f.name != "call_id"] + [
    "agitation", "agitation_high_share", "agent_pitch_vs_baseline_st",
]


def process_call(call: CallInput, model: whisper.Whisper, batch_size: int = 8) -> CallResult:
    """All per-call stages. Raises AudioError (or another exception) for a bad recording."""
    audio = load_call(call.path, call.channels)
    segments = find_segments(audio)
    utts = transcribe_calls(model, [(call.call_id, audio, segments)], batch_size)[call.call_id]
    figures, call_figures = measure_call(call.call_id, audio, utts)
    return CallResult(call, audio.duration_s, audio.sha256, audio.layout, utts, figures, call_figures)


def _call_row(call: CallInput, run_id: str, status: str, error: str | None = None,
              result: CallResult | None = None) -> dict:
    return {
        "call_id": call.call_id, "agent_id": call.agent_id, "recorded_at": call.recorded_at,
        "agent_hired_at": call.agent_hired_at, "topic": call.topic,
        "channels": result.layout if result else call.channels,
        "folder": call.folder,
        "path": call.rel_path,
        "audio_sha256": result.sha256 if result else None,
        "duration_s": result.duration_s if result else None, "status": status, "error": error,
        "run_id": run_id, "processed_at": datetime.now(), "attributes": store.to_json(call.attributes),
    }


def save_call(con: duckdb.DuckDBPyConnection, result: CallResult, run_id: str) -> None:
    """Replace this call's rows in the base tables, in one transaction."""
    utt = pd.DataFrame([asdict(u) for u in result.utterances])
    fig = pd.DataFrame([asdict(f) for f in result.figures])
    rows = utt.merge(fig, on=["call_id", "utterance_id"]) if len(utt) else utt
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM utterance_log WHERE call_id = ?", [result.call.call_id])
        store.write_frame(con, "utterance_log", rows)
        store.write_frame(con, "call_figures", pd.DataFrame([asdict(result.call_figures)]), key="call_id")
        store.write_frame(con, "call_log", pd.DataFrame([_call_row(result.call, run_id, "ok", result=result)]),
                          key="call_id")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def save_failed_call(con: duckdb.DuckDBPyConnection, call: CallInput, run_id: str, error: str) -> None:
    """A call that failed keeps a `calls` row with status 'failed' and its reason."""
    store.write_frame(con, "call_log", pd.DataFrame([_call_row(call, run_id, "failed", error)]),
                      key="call_id")


def _call_docs(utts: pd.DataFrame, calls: pd.DataFrame) -> dict[str, align.CallDoc]:
    text = utts.sort_values(["call_id", "utterance_id"]).groupby("call_id")["text"].agg("".join)
    return {
        r.call_id: align.CallDoc(r.call_id, r.topic if isinstance(r.topic, str) else None,
                                 text.get(r.call_id, ""))
        for r in calls.itertuples()
    }


def rebuild_derived(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Recompute every derived table from the base tables; returns row counts."""
    calls = con.sql("SELECT call_id, agent_id, recorded_at, agent_hired_at, topic FROM call_log "
                    "WHERE status = 'ok'").df()
    utts = con.sql("SELECT u.*, l.agent_id FROM utterance_log u JOIN call_log l USING (call_id) "
                   "WHERE l.status = 'ok'").df()
    cohorts = derive.assign_cohorts(calls)
    utts = utts.merge(cohorts[["call_id", "cohort"]], on="call_id", how="left")
    agent_utts = utts[utts["speaker"] == "agent"]
    baselines = derive.agent_baselines(agent_utts)
    utt_derived = derive.utterance_agitation(agent_utts, baselines) if len(agent_utts) else pd.DataFrame(
        columns=["call_id", "utterance_id", "pitch_vs_baseline_st", "agitation"])
    call_ag = derive.call_agitation(agent_utts.merge(utt_derived, on=["call_id", "utterance_id"]))
    call_derived = cohorts.merge(call_ag, on="call_id", how="left")

    utts = utts.merge(utt_derived, on=["call_id", "utterance_id"], how="left")
    docs = _call_docs(utts, calls)
    pairs_rows, aligned_rows = [], []
    for agent_id, g in call_derived.merge(calls[["call_id", "agent_id"]], on="call_id").groupby("agent_id"):
        early = [docs[c] for c in g.loc[g["cohort"] == "early", "call_id"]]
        current = [docs[c] for c in g.loc[g["cohort"] == "current", "call_id"]]
        for p in align.pair_calls(early, current):
            pair_id = f"{p.early_call_id}~{p.current_call_id}"
            pairs_rows.append({"pair_id": pair_id, "agent_id": agent_id, **asdict(p)})
            aligned_rows += _aligned_rows(pair_id, agent_id, p, utts)

    metrics = con.sql("SELECT f.*, l.agent_id FROM call_figures f JOIN call_log l USING (call_id) "
                      "WHERE l.status = 'ok'").df().merge(call_derived, on="call_id", how="left")
    drift = derive.agent_drift(metrics, DRIFT_METRICS)

    frames = {
        "call_derived": call_derived, "utterance_derived": utt_derived, "agent_baselines": baselines,
        "agent_drift": drift, "call_pairs": pd.DataFrame(pairs_rows),
        "aligned_utterances": pd.DataFrame(aligned_rows),
    }
    con.execute("BEGIN")
    try:
        for table, frame in frames.items():
            store.replace_table(con, table, frame)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return {table: len(frame) for table, frame in frames.items()}


def _aligned_rows(pair_id: str, agent_id: str, pair: align.CallPair, utts: pd.DataFrame) -> list[dict]:
    def call_utts(call_id: str) -> pd.DataFrame:
        return utts[utts["call_id"] == call_id].sort_values("utterance_id").set_index("utterance_id")

    early, current = call_utts(pair.early_call_id), call_utts(pair.current_call_id)
    e_turns = align.agent_turns([(i, r.speaker, r.text) for i, r in early.iterrows()])
    c_turns = align.agent_turns([(i, r.speaker, r.text) for i, r in current.iterrows()])
    context = {("e", t.utterance_id): t.context for t in e_turns} | {
        ("c", t.utterance_id): t.context for t in c_turns}

    def delta(col: str, e: pd.Series, c: pd.Series) -> float | None:
        a, b = e.get(col), c.get(col)
        return None if pd.isna(a) or pd.isna(b) else float(b - a)

    rows = []
    for m in align.align_turns(e_turns, c_turns):
        e, c = early.loc[m.early_utterance_id], current.loc[m.current_utterance_id]
        rows.append({
            "pair_id": pair_id, "agent_id": agent_id, "early_call_id": pair.early_call_id,
            "current_call_id": pair.current_call_id, "early_utterance_id": m.early_utterance_id,
            "current_utterance_id": m.current_utterance_id, "similarity": m.similarity,
            "early_customer_text": context[("e", m.early_utterance_id)], "early_text": e["text"],
            "current_customer_text": context[("c", m.current_utterance_id)], "current_text": c["text"],
            "early_start_s": e["start_s"], "early_end_s": e["end_s"],
            "current_start_s": c["start_s"], "current_end_s": c["end_s"],
            "delta_speech_rate_cpm": delta("speech_rate_cpm", e, c),
            "delta_pitch_vs_baseline_st": delta("pitch_vs_baseline_st", e, c),
            "delta_loudness_db": delta("loudness_dbfs", e, c),
            "delta_agitation": delta("agitation", e, c),
        })
    return rows


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("callreview", "openai-whisper", "torch", "duckdb", "prefect", "librosa", "jieba", "silero-vad"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def top_drift(con: duckdb.DuckDBPyConnection, limit: int = 5) -> pd.DataFrame:
    """Agents ranked by how much their agitation rose from early to current calls."""
    return con.sql(f"""
        SELECT a.agent_id, a.delta AS agitation_delta, r.delta AS speech_rate_delta_cpm,
               i.delta AS impatience_delta, c.delta AS confirmation_delta, a.n_early, a.n_current
        FROM agent_drift a
        LEFT JOIN agent_drift r ON r.agent_id = a.agent_id AND r.metric = 'agent_speech_rate_cpm'
        LEFT JOIN agent_drift i ON i.agent_id = a.agent_id AND i.metric = 'agent_impatience_count'
        LEFT JOIN agent_drift c ON c.agent_id = a.agent_id AND c.metric = 'agent_confirmation_count'
        WHERE a.metric = 'agitation' AND a.delta IS NOT NULL
        ORDER BY a.delta DESC LIMIT {int(limit)}""").df()
