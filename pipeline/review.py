"""The review stages as plain functions, in data-flow order. flows/review.py wraps them in
Prefect tasks; tests and notebooks can call them directly. No SQL here: pipeline/store reads
and writes the database.

  prepare_call:      recording -> audio -> VAD segments  (PreparedCall; one call)
  transcribe_chunk:  many prepared calls -> transcripts, windows batched across calls
  measure_prepared:  audio + transcript -> per-call metrics  (CallResult; one call)
  process_call:      the three above for one call
  derive_tables:     the stored history -> cohorts, agitation, pairs, alignment, drift (frames)
"""

from __future__ import annotations

import hashlib
import platform
from collections import Counter
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import asdict, fields, replace
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

import duckdb
import numpy as np
import pandas as pd
import torch
import whisper

from pipeline import align, derive, mono, rules, store
from pipeline.asr.decode import AsrRuntime
from pipeline.audio import load_call
from pipeline.behaviours.figures import Spoken
from pipeline.behaviours.tables import CALL_METRICS as BEHAVIOUR_METRICS
from pipeline.behaviours.tables import KEPT_COLUMNS, behaviour_tables, call_detection
from pipeline.config import Config
from pipeline.memory import release_freed_memory
from pipeline.metrics import measure_call
from pipeline.records import (
    CallAudio,
    CallFigures,
    CallInput,
    CallResult,
    CallTextWork,
    PreparedCall,
    Transcript,
    Utterance,
    UtteranceFigures,
)
from pipeline.rows import PairRow
from pipeline.speakers import AgentChoice, SpeakerEncoder, VoicePrint
from pipeline.store.history import History
from pipeline.text import words
from pipeline.transcribe import transcribe_calls
from pipeline.vad import find_segments, speech_spans

# Call-level metrics that agent_drift summarises: every numeric figure plus the derived ones.
DRIFT_METRICS = [f.name for f in fields(CallFigures) if f.name != "call_id"] + [
    "agitation",
    "agitation_high_share",
    "agent_pitch_vs_baseline_st",
    "customer_agitation",
    *BEHAVIOUR_METRICS,
]


def check_settings(config: Config) -> None:
    """Settings problems the first call would hit, found before any call is processed."""
    rules.check_rules(config.lexicon.rules, set(DRIFT_METRICS))
    mono.service_phrases(config.lexicon, config.speakers)


def measure(
    call_id: str, audio: CallAudio, transcript: Transcript, config: Config
) -> tuple[list[UtteranceFigures], CallFigures]:
    """The per-call figures, with the settings they need."""
    return measure_call(
        call_id, audio, transcript, config.tone, config.prosody, config.clarity, config.lexicon
    )


def prepare_call(
    call: CallInput,
    vad_model: torch.nn.Module,
    encoder: SpeakerEncoder,
    config: Config,
    embed_agent: bool = False,
) -> PreparedCall:
    """Decode the recording and find its speech. Raises AudioError for a bad recording.

    A mono call's speech is split into its two voices (who is the agent is decided per chunk,
    `attribute_chunk`). A stereo call's agent channel is embedded when `embed_agent` (the
    agent's voice print still wants calls: [speakers] print_calls_max).
    """
    audio = load_call(call.path, call.channels, config.audio)
    if audio.is_mono:
        spans = speech_spans(audio.samples("agent"), config.vad, vad_model, audio.sr)
        voices = mono.split_mono(audio, spans, encoder, config.speakers, call.call_id)
        return PreparedCall(call, audio, (), voices=voices)
    segments = find_segments(audio, config.vad, vad_model)
    embedding = (
        mono.agent_channel_embedding(audio, segments, encoder, config) if embed_agent else None
    )
    return PreparedCall(call, audio, tuple(segments), agent_embedding=embedding)


def attribute_chunk(
    prepared: Sequence[PreparedCall],
    prints: Mapping[str, VoicePrint],
    config: Config,
    stored: Container[str] = (),
    first_prints: Mapping[str, Sequence[np.ndarray | None]] | None = None,
) -> tuple[list[PreparedCall], dict[str, VoicePrint], dict[str, AgentChoice]]:
    """Give the chunk's mono calls their agent and customer segments (the agent's voice print,
    or the voice that recurs across the agent's calls); refresh the prints from the chunk's
    stereo calls. Returns the calls with segments, the prints that changed, and each mono call's
    decision. Calls already `stored` by an earlier run do not feed a recurrence print again.
    `first_prints`: agents' stereo embeddings from `mono.first_print_embeddings`, for agents whose
    first mono call is in this chunk."""
    mono_calls = [(p.call.call_id, p.call.agent_id, p.voices) for p in prepared if p.voices]
    stereo: dict[str, list[np.ndarray | None]] = {
        k: list(v) for k, v in (first_prints or {}).items()
    }
    for p in prepared:
        if p.agent_embedding is not None:
            stereo.setdefault(p.call.agent_id, []).append(p.agent_embedding)
    segments, updated, choices = mono.attribute_chunk(
        mono_calls, prints, stereo, config.speakers, stored=stored
    )
    calls = [
        replace(p, segments=tuple(segments[p.call.call_id])) if p.voices else p for p in prepared
    ]
    return calls, updated, choices


def transcribe_chunk(
    prepared: Sequence[PreparedCall], asr_model: AsrRuntime | whisper.Whisper, config: Config
) -> dict[str, Transcript]:
    """Transcripts of many calls at once: their windows share Whisper's batches. Each window
    holds one call's speech, so a call's text does not depend on which calls it is batched with."""
    items = [(p.call.call_id, p.audio, list(p.segments)) for p in prepared]
    return transcribe_calls(asr_model, items, config.asr)


def measure_prepared(
    prepared: PreparedCall,
    transcript: Transcript,
    config: Config,
    choice: AgentChoice | None = None,
) -> CallResult:
    """The per-call figures of a transcribed call, as the record the store saves.

    A mono call decided weakly (`choice`) is settled here by the service phrases on each side's
    text, before any figure is computed on its speakers.
    """
    call, audio = prepared.call, prepared.audio
    attribution = mono.stereo_attribution(call.call_id)
    if prepared.voices is not None and choice is not None:
        phrases = mono.service_phrases(config.lexicon, config.speakers)
        transcript, choice = mono.settle_by_phrases(
            transcript, prepared.voices, choice, phrases, config.speakers
        )
        attribution = mono.attribution_row(call.call_id, prepared.voices, choice, config.speakers)
    figures, call_figures = measure(call.call_id, audio, transcript, config)
    work = text_work(transcript.utterances, config) if call.agent_id is not None else None
    return CallResult(
        call,
        audio.duration_s,
        audio.sha256,
        audio.layout,
        transcript.utterances,
        figures,
        call_figures,
        transcript.pii,
        attribution,
        prepared.look,
        work,
    )


def text_work(utterances: Sequence[Utterance], config: Config) -> CallTextWork:
    """The work on a call's own text that the derive stage would otherwise do every night it
    recomputes the call's agent (records.CallTextWork), from the utterances as stored: done here,
    on the workers, it is stored with the call and the derive keeps it."""
    ordered = sorted(utterances, key=lambda u: u.utterance_id)
    spoken = [Spoken(u.utterance_id, u.speaker, u.text or "", u.end_s - u.start_s) for u in ordered]
    settings = config.lexicon.behaviours
    behaviours, hits = call_detection(settings.spec, spoken) if settings else (None, ())
    text = "".join(u.text or "" for u in ordered)
    return CallTextWork(" ".join(words(text, config.lexicon.jargon)), behaviours, hits)


def process_call(
    call: CallInput,
    asr_model: AsrRuntime | whisper.Whisper,
    vad_model: torch.nn.Module,
    encoder: SpeakerEncoder,
    config: Config,
    prints: Mapping[str, VoicePrint] | None = None,
) -> CallResult:
    """All per-call stages for one call (a chunk of one). Raises AudioError (or another
    exception) for a bad recording."""
    prepared = prepare_call(call, vad_model, encoder, config)
    [prepared], _, choices = attribute_chunk([prepared], prints or {}, config)
    transcript = transcribe_chunk([prepared], asr_model, config)[call.call_id]
    return measure_prepared(prepared, transcript, config, choices.get(call.call_id))


def history_columns(config: Config) -> tuple[str, ...]:
    """The utterance_log columns derive_tables reads (store.load_history's utterance_columns):
    keys, speaker, timing and text (behaviours, pairing, alignment), the descriptive figures of
    the baselines and the aligned deltas, and agitation's voice features."""
    return tuple(
        dict.fromkeys(
            (
                "call_id",
                "utterance_id",
                "speaker",
                "start_s",
                "end_s",
                "text",
                "pitch_median_hz",
                "pitch_range_st",
                "loudness_dbfs",
                "speech_rate_cpm",
                *config.agitation.features,
            )
        )
    )


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
        if len(baselines)  # no agent with utterances (a batch of calls without agent_id): none
        else pd.DataFrame(columns=["call_id", "utterance_id", "pitch_vs_baseline_st", "agitation"])
    )
    call_ag = derive.call_agitation(
        agent_utts.merge(utt_derived, on=["call_id", "utterance_id"]), config.agitation
    )
    call_derived = cohorts.merge(call_ag, on="call_id", how="left").merge(
        derive.customer_agitation(utts, config.agitation), on="call_id", how="left"
    )

    utts = utts.merge(utt_derived, on=["call_id", "utterance_id"], how="left")
    cohort_calls = call_derived.loc[call_derived["cohort"].notna(), ["call_id", "cohort"]].merge(
        calls[["call_id", "agent_id", "topic"]], on="call_id"
    )
    tokens = align.call_tokens(
        utts, cohort_calls["call_id"], history.kept_words, config.lexicon.jargon
    )
    pair_rows: list[PairRow] = []
    for agent_id, g in cohort_calls.groupby("agent_id"):
        sides = {
            cohort: [
                (str(c), t if isinstance(t, str) else None)
                for c, t in zip(side["call_id"], side["topic"], strict=True)
            ]
            for cohort, side in g.groupby("cohort")
        }
        pair_rows += [
            PairRow(
                f"{p.early_call_id}~{p.current_call_id}",
                str(agent_id),
                p.early_call_id,
                p.current_call_id,
                p.topic,
                p.similarity,
            )
            for p in align.pair_tokens(sides.get("early", []), sides.get("current", []), tokens)
        ]
    # an agent whose baselines are as stored keeps the stored alignment of its unchanged pairs
    steady = derive.unchanged_agents(
        baselines, history.stored_baselines, ["agent_id"]
    ) & derive.unchanged_agents(
        agitation_base, history.stored_agitation_baselines, ["agent_id", "feature"]
    )
    aligned = align.align_pairs(pair_rows, utts, config.alignment, history.kept_aligned, steady)

    behaviours = behaviour_tables(
        history.utterances,
        config.lexicon.behaviours,
        history.kept_behaviours,
        history.kept_hits,
    )
    metrics = history.metrics.merge(call_derived, on="call_id", how="left").merge(
        behaviours["call_behaviours"], on="call_id", how="left"
    )
    return {
        **behaviours,
        "call_derived": call_derived,
        "utterance_derived": utt_derived,
        "agent_baselines": baselines,
        "agitation_baselines": agitation_base,
        "agent_drift": derive.agent_drift(metrics, DRIFT_METRICS),
        "call_flags": pd.DataFrame(
            [vars(f) for f in rules.flag_calls(metrics, config.lexicon.rules)]
        ),
        "call_words": pd.DataFrame(
            {"call_id": list(tokens), "words": [" ".join(w) for w in tokens.values()]},
            columns=["call_id", "words"],
        ),
        # vars, not asdict, for these flat records: asdict's deep copy of a night's hundreds of
        # thousands of rows cost seconds
        "call_pairs": pd.DataFrame([vars(p) for p in pair_rows]),
        "aligned_utterances": aligned,
    }


def update_derived(
    con: duckdb.DuckDBPyConnection,
    agents: Sequence[str] | None,
    config: Config,
    since: datetime | None,
    changed: Sequence[str] = (),
    derive: Callable[[History, Config], dict[str, pd.DataFrame]] = derive_tables,
    settings_sha256: str | None = None,
) -> dict[str, int]:
    """Recompute and store the derived tables of `agents` (every agent when None), one batch of
    agents at a time (store.agent_batches, [run] derive_batch_calls): every derived figure of an
    agent comes from that agent's calls alone, so the memory follows the batch and not the
    history. `since` (store.last_finished) and `changed` (calls masked again this run): the
    per-call text work of the calls stored before `since`, or since by a run with
    `settings_sha256` (this one: records.CallTextWork), and not changed is kept as stored
    (store.load_history). `derive`: derive_tables, or the flow's task around it. Rows written
    per table."""
    batches = store.agent_batches(con, agents, config.run.derive_batch_calls)
    if agents is None:  # and the calls without an agent_id, whose rows (rule flags) were cleared
        store.clear_derived(con)
        batches.append([])
    written: Counter[str] = Counter()
    for batch in batches:
        history = store.load_history(
            con,
            batch,
            history_columns(config),
            unchanged_since=since,
            changed=changed,
            kept_columns=KEPT_COLUMNS,
            settings_sha256=settings_sha256,
        )
        derived = derive(history, config)
        del history
        store.replace_derived(con, derived, batch)
        written.update({t: len(f) for t, f in derived.items()})
        del derived
        release_freed_memory()
    return dict(written)


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


def settings_fingerprint(config: Config, versions: Mapping[str, str]) -> str:
    """A hash of every setting and package version the derived tables depend on, so a night
    with no new call recomputes them only when a setting changed ([run] paths and concurrency
    excluded: they change no figure)."""
    figures = {k: v for k, v in asdict(config).items() if k not in ("run", "schedule", "sources")}
    text = repr(sorted(figures.items())) + repr(sorted(versions.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
