"""Per-utterance and per-call figures for one call: the tone and clarity modules put together.

Only figures that need nothing but this call are computed here; baseline-relative ones
(agitation, pitch vs the agent's early calls) are in pipeline.derive.
"""

from __future__ import annotations

import numpy as np

from pipeline.clarity import call_clarity, word_count_and_jargon
from pipeline.config import ClarityOptions, Lexicon, ProsodyOptions, ToneOptions
from pipeline.prosody import FEATURES, Prosody
from pipeline.records import CallAudio, CallFigures, Transcript, Utterance, UtteranceFigures
from pipeline.text import n_chars
from pipeline.tone import (
    Acoustics,
    acoustics,
    hz_to_st,
    muted_seconds,
    phrase_counts,
    speech_rate_cpm,
    turn_taking,
)


def voice_figures(features: Prosody) -> dict[str, float | None]:
    """The voice features as UtteranceFigures fields (all but the clip duration)."""
    return {name: getattr(features, name) for name in FEATURES}


def _agent_muted_s(audio: CallAudio, utts: list[Utterance], tone: ToneOptions) -> float:
    """Muted agent line between the call's first and last speech (none before or after)."""
    if not utts:
        return 0.0
    start, end = min(u.start_s for u in utts), max(u.end_s for u in utts)
    return round(muted_seconds(audio.samples("agent"), start, end, tone), 3)


def _per_min(count: int, seconds: float) -> float | None:
    return count / (seconds / 60) if seconds > 0 else None


def measure_call(
    call_id: str,
    audio: CallAudio,
    transcript: Transcript,
    tone: ToneOptions,
    voice_options: ProsodyOptions,
    clarity_options: ClarityOptions,
    lexicon: Lexicon,
) -> tuple[list[UtteranceFigures], CallFigures]:
    utts = transcript.utterances
    two_channels = not audio.is_mono
    turns = turn_taking(utts, tone)
    acs: list[Acoustics] = [
        acoustics(audio.clip(u.speaker, u.start_s, u.end_s), tone, voice_options) for u in utts
    ]

    figures: list[UtteranceFigures] = []
    for u, ac, ov, intr in zip(utts, acs, turns.overlap_s, turns.interrupts, strict=True):
        hits = phrase_counts(u.text, lexicon)
        n_words, jargon = word_count_and_jargon(u.text, lexicon.jargon)
        figures.append(
            UtteranceFigures(
                call_id=call_id,
                utterance_id=u.utterance_id,
                n_chars=n_chars(u.text),
                speech_rate_cpm=speech_rate_cpm(u.text, u.duration_s, tone),
                pitch_median_hz=ac.pitch_median_hz,
                pitch_range_st=ac.pitch_range_st,
                loudness_dbfs=ac.loudness_dbfs,
                loudness_std_db=ac.loudness_std_db,
                **voice_figures(ac.voice),
                politeness_hits=hits.get("politeness", 0),
                impatience_hits=hits.get("impatience", 0),
                confirmation_hits=hits.get("confirmation", 0),
                confusion_hits=hits.get("confusion", 0),
                structure_hits=hits.get("structure", 0),
                forbidden_hits=hits.get("forbidden", 0),
                jargon_hits=jargon,
                n_words=n_words,
                overlaps_other_s=round(ov, 3) if two_channels else 0.0,
                interrupts=intr if two_channels else False,
            )
        )

    def side(speaker: str) -> list[int]:
        return [i for i, u in enumerate(utts) if u.speaker == speaker]

    agent, customer = side("agent"), side("customer")
    agent_s = sum(utts[i].duration_s for i in agent)
    customer_s = sum(utts[i].duration_s for i in customer)
    agent_chars = sum(figures[i].n_chars for i in agent)
    customer_chars = sum(figures[i].n_chars for i in customer)
    fast_s = sum(
        utts[i].duration_s
        for i in agent
        if (figures[i].speech_rate_cpm or 0) > tone.speech_rate_max_cpm
    )

    def pooled_pitch(idx: list[int]) -> np.ndarray:
        parts = [acs[i].voiced_pitch_hz for i in idx if acs[i].voiced_pitch_hz.size]
        return np.concatenate(parts) if parts else np.empty(0)

    def pooled_loudness(idx: list[int]) -> float | None:
        # Power mean weighted by duration: a long loud explanation counts more than "嗯".
        vals = [
            (figures[i].loudness_dbfs, utts[i].duration_s)
            for i in idx
            if figures[i].loudness_dbfs is not None
        ]
        if not vals:
            return None
        power = sum(10 ** (db / 10) * d for db, d in vals) / sum(d for _, d in vals)
        return float(10 * np.log10(power))

    agent_pitch = pooled_pitch(agent)
    customer_pitch = pooled_pitch(customer)
    agent_db = [figures[i].loudness_dbfs for i in agent if figures[i].loudness_dbfs is not None]
    agent_level, customer_level = pooled_loudness(agent), pooled_loudness(customer)
    clarity = call_clarity(utts, clarity_options)
    total_words = sum(figures[i].n_words for i in agent)
    politeness = sum(figures[i].politeness_hits for i in agent)
    impatience = sum(figures[i].impatience_hits for i in agent)
    jargon = sum(figures[i].jargon_hits for i in agent)

    call = CallFigures(
        call_id=call_id,
        agent_speech_s=round(agent_s, 3),
        customer_speech_s=round(customer_s, 3),
        agent_asr_coverage=transcript.coverage["agent"].share,
        customer_asr_coverage=transcript.coverage["customer"].share,
        agent_talk_ratio=agent_s / (agent_s + customer_s) if agent_s + customer_s > 0 else None,
        agent_speech_rate_cpm=agent_chars / (agent_s / 60) if agent_s > 0 else None,
        customer_speech_rate_cpm=customer_chars / (customer_s / 60) if customer_s > 0 else None,
        agent_fast_speech_share=fast_s / agent_s if agent_s > 0 else None,
        agent_pitch_median_hz=float(np.median(agent_pitch)) if agent_pitch.size else None,
        agent_pitch_range_st=float(np.subtract(*np.percentile(hz_to_st(agent_pitch), [90, 10])))
        if agent_pitch.size
        else None,
        customer_pitch_median_hz=float(np.median(customer_pitch)) if customer_pitch.size else None,
        agent_loudness_dbfs=agent_level,
        agent_loudness_std_db=float(np.std(agent_db)) if len(agent_db) > 1 else None,
        customer_loudness_dbfs=customer_level,
        agent_loudness_vs_customer_db=agent_level - customer_level
        if agent_level is not None and customer_level is not None
        else None,
        dead_air_count=turns.dead_air_count,
        dead_air_total_s=round(turns.dead_air_total_s, 3),
        dead_air_max_s=round(turns.dead_air_max_s, 3),
        hold_count=turns.hold_count,
        hold_total_s=round(turns.hold_total_s, 3),
        agent_mute_total_s=_agent_muted_s(audio, utts, tone) if two_channels else None,
        overtalk_count=turns.overtalk_count if two_channels else None,
        overtalk_total_s=round(turns.overtalk_total_s, 3) if two_channels else None,
        agent_interruptions=turns.agent_interruptions if two_channels else None,
        customer_interruptions=turns.customer_interruptions if two_channels else None,
        response_latency_median_s=float(np.median(turns.latencies_s))
        if turns.latencies_s
        else None,
        agent_politeness_count=politeness,
        agent_politeness_per_min=_per_min(politeness, agent_s),
        agent_impatience_count=impatience,
        agent_forbidden_count=sum(figures[i].forbidden_hits for i in agent),
        agent_impatience_per_min=_per_min(impatience, agent_s),
        agent_sentence_chars_mean=clarity.sentence_chars_mean,
        agent_long_sentence_share=clarity.long_sentence_share,
        agent_structure_count=sum(figures[i].structure_hits for i in agent),
        agent_jargon_count=jargon,
        agent_jargon_per_100_words=100 * jargon / total_words if total_words else None,
        agent_confirmation_count=sum(figures[i].confirmation_hits for i in agent),
        customer_confusion_count=sum(figures[i].confusion_hits for i in customer),
        agent_repeat_count=clarity.repeat_count,
        agent_chars_per_customer_turn=clarity.chars_per_customer_turn,
    )
    return figures, call
