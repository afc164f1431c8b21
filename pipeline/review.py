"""The review stages as plain functions, in data-flow order. flows/review.py wraps them in
Prefect tasks; tests and notebooks can call them directly. No SQL here: pipeline/store reads
and writes the database.

  process_call:  recording -> audio -> VAD -> transcript -> per-call metrics  (CallResult)
  derive_tables: the stored history -> cohorts, agitation, pairs, alignment, drift  (frames)
"""

from __future__ import annotations

import platform
from dataclasses import asdict, fields
from importlib.metadata import PackageNotFoundError, version

import pandas as pd
import torch
import whisper

from pipeline import align, derive, rules
from pipeline.audio import load_call
from pipeline.config import Config
from pipeline.metrics import measure_call
from pipeline.records import (
    CallAudio,
    CallFigures,
    CallInput,
    CallResult,
    Transcript,
    UtteranceFigures,
)
from pipeline.rows import AlignedRow, PairRow
from pipeline.store.history import History
from pipeline.transcribe import transcribe_calls
from pipeline.vad import find_segments

# Call-level metrics that agent_drift summarises: every numeric figure plus the derived ones.
DRIFT_METRICS = [f.name for f in fields(CallFigures) if f.name != "call_id"] + [
    "agitation",
    "agitation_high_share",
    "agent_pitch_vs_baseline_st",
    "customer_agitation",
]


def check_settings(config: Config) -> None:
    """Settings problems the first call would hit, found before any call is processed."""
    rules.check_rules(config.lexicon.rules, set(DRIFT_METRICS))


def measure(
    call_id: str, audio: CallAudio, transcript: Transcript, config: Config
) -> tuple[list[UtteranceFigures], CallFigures]:
    """The per-call figures, with the settings they need."""
    return measure_call(
        call_id, audio, transcript, config.tone, config.prosody, config.clarity, config.lexicon
    )


def process_call(
    call: CallInput, asr_model: whisper.Whisper, vad_model: torch.nn.Module, config: Config
) -> CallResult:
    """All per-call stages. Raises AudioError (or another exception) for a bad recording."""
    audio = load_call(call.path, call.channels, config.audio)
    segments = find_segments(audio, config.vad, vad_model, config.diarize)
    transcript = transcribe_calls(asr_model, [(call.call_id, audio, segments)], config.asr)[
        call.call_id
    ]
    utts = transcript.utterances
    figures, call_figures = measure(call.call_id, audio, transcript, config)
    return CallResult(
        call,
        audio.duration_s,
        audio.sha256,
        audio.layout,
        utts,
        figures,
        call_figures,
        transcript.pii,
    )


def _call_docs(utts: pd.DataFrame, calls: pd.DataFrame) -> dict[str, align.CallDoc]:
    text = utts.sort_values(["call_id", "utterance_id"]).groupby("call_id")["text"].agg("".join)
    return {
        r.call_id: align.CallDoc(
            r.call_id, r.topic if isinstance(r.topic, str) else None, text.get(r.call_id, "")
        )
        for r in calls.itertuples()
    }


def derive_tables(history: History, config: Config) -> dict[str, pd.DataFrame]:
    """Every derived table, recomputed from the stored history of ok calls."""
    calls, utts = history.calls, history.utterances
    cohorts = derive.assign_cohorts(calls, config.cohorts)
    utts = utts.merge(cohorts[["call_id", "cohort"]], on="call_id", how="left")
    agent_utts = utts[utts["speaker"] == "agent"]
    baselines = derive.agent_baselines(agent_utts, config.baseline)
    agitation_base = derive.agitation_baselines(agent_utts, config.agitation)
    utt_derived = (
        derive.utterance_agitation(agent_utts, baselines, agitation_base)
        if len(agent_utts)
        else pd.DataFrame(columns=["call_id", "utterance_id", "pitch_vs_baseline_st", "agitation"])
    )
    call_ag = derive.call_agitation(
        agent_utts.merge(utt_derived, on=["call_id", "utterance_id"]), config.agitation
    )
    call_derived = cohorts.merge(call_ag, on="call_id", how="left").merge(
        derive.customer_agitation(utts, config.agitation), on="call_id", how="left"
    )

    utts = utts.merge(utt_derived, on=["call_id", "utterance_id"], how="left")
    docs = _call_docs(utts, calls)
    pair_rows: list[PairRow] = []
    aligned_rows: list[AlignedRow] = []
    by_agent = call_derived.merge(calls[["call_id", "agent_id"]], on="call_id").groupby("agent_id")
    for agent_id, g in by_agent:
        early = [docs[c] for c in g.loc[g["cohort"] == "early", "call_id"]]
        current = [docs[c] for c in g.loc[g["cohort"] == "current", "call_id"]]
        for p in align.pair_calls(early, current, config.lexicon.jargon):
            pair = PairRow(
                f"{p.early_call_id}~{p.current_call_id}",
                str(agent_id),
                p.early_call_id,
                p.current_call_id,
                p.topic,
                p.similarity,
            )
            pair_rows.append(pair)
            aligned_rows += _aligned_rows(pair, utts, config)

    metrics = history.metrics.merge(call_derived, on="call_id", how="left")
    return {
        "call_derived": call_derived,
        "utterance_derived": utt_derived,
        "agent_baselines": baselines,
        "agitation_baselines": agitation_base,
        "agent_drift": derive.agent_drift(metrics, DRIFT_METRICS),
        "call_flags": pd.DataFrame(
            [asdict(f) for f in rules.flag_calls(metrics, config.lexicon.rules)]
        ),
        "call_pairs": pd.DataFrame([asdict(p) for p in pair_rows]),
        "aligned_utterances": pd.DataFrame([asdict(a) for a in aligned_rows]),
    }


def _aligned_rows(pair: PairRow, utts: pd.DataFrame, config: Config) -> list[AlignedRow]:
    def call_utts(call_id: str) -> pd.DataFrame:
        rows = utts[utts["call_id"] == call_id]
        return rows.sort_values("utterance_id").set_index("utterance_id")

    early, current = call_utts(pair.early_call_id), call_utts(pair.current_call_id)
    backchannel = config.alignment.backchannel_max_chars
    e_turns = align.agent_turns([(i, r.speaker, r.text) for i, r in early.iterrows()], backchannel)
    c_turns = align.agent_turns(
        [(i, r.speaker, r.text) for i, r in current.iterrows()], backchannel
    )
    context = {("e", t.utterance_id): t.context for t in e_turns} | {
        ("c", t.utterance_id): t.context for t in c_turns
    }

    def delta(col: str, e: pd.Series, c: pd.Series) -> float | None:
        a, b = e.get(col), c.get(col)
        return None if pd.isna(a) or pd.isna(b) else float(b - a)

    rows = []
    for m in align.align_turns(e_turns, c_turns, config.alignment):
        e, c = early.loc[m.early_utterance_id], current.loc[m.current_utterance_id]
        rows.append(
            AlignedRow(
                pair_id=pair.pair_id,
                agent_id=pair.agent_id,
                early_call_id=pair.early_call_id,
                current_call_id=pair.current_call_id,
                early_utterance_id=m.early_utterance_id,
                current_utterance_id=m.current_utterance_id,
                similarity=m.similarity,
                early_customer_text=context[("e", m.early_utterance_id)],
                early_text=e["text"],
                current_customer_text=context[("c", m.current_utterance_id)],
                current_text=c["text"],
                early_start_s=e["start_s"],
                early_end_s=e["end_s"],
                current_start_s=c["start_s"],
                current_end_s=c["end_s"],
                delta_speech_rate_cpm=delta("speech_rate_cpm", e, c),
                delta_pitch_vs_baseline_st=delta("pitch_vs_baseline_st", e, c),
                delta_loudness_db=delta("loudness_dbfs", e, c),
                delta_agitation=delta("agitation", e, c),
            )
        )
    return rows


RUN_PACKAGES = (
    "callreview",
    "openai-whisper",
    "torch",
    "duckdb",
    "prefect",
    "librosa",
    "jieba",
    "silero-vad",
)


def versions(packages: tuple[str, ...] = RUN_PACKAGES) -> dict[str, str]:
    """Python's and the given packages' versions: what produced a run's rows."""
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
