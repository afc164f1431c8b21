"""Speech segments -> utterances with text, using openai-whisper.

Each speaker's segments are packed into windows of up to 30 s (`pipeline/windows.py`), windows are
decoded in batches with timestamps, and the timed text is mapped back onto the VAD segments it
overlaps. Each window is decoded independently (no conditioning on previous text), which removes
Whisper's repetition loops. Where Whisper stopped early, the window is decoded again from its last
timestamp, as Whisper's own `transcribe` seeks. Windows from many calls can share a batch:
`transcribe_calls` takes any number of calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import whisper

from pipeline.asr.decode import AsrRuntime, Decoded, decode_batch, make_runtime
from pipeline.asr.timing import CharTimes, char_times
from pipeline.audio import SAMPLE_RATE
from pipeline.config import AsrOptions
from pipeline.records import CallAudio, Coverage, Segment, Transcript, Utterance
from pipeline.redact import RedactedUtterance, RedactOptions, redact_utterances, retime
from pipeline.rows import PiiSpan
from pipeline.text import echoes_prompt, simplify
from pipeline.windows import (
    TimedText,
    Window,
    assign_texts,
    pack_windows,
    speech_after,
    timed_segments,
)

SEEKS = 3  # most re-decodes of one window from where its text stopped
# openai-whisper as loaded, or with how it is run decided (pipeline/asr/decode.py)
AsrModel = whisper.Whisper | AsrRuntime
# when each character of a segment's text was spoken (pipeline.asr.timing), or None
Aligner = Callable[[Segment, str], CharTimes | None]


@dataclass(frozen=True)
class WindowText:
    """What decoding one window gave: text and timed coverage per piece, and Whisper's scores."""

    texts: tuple[tuple[str, ...], ...]  # per piece
    covered_s: tuple[float, ...]  # per piece: seconds of its speech under timestamped text
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    text_end_s: float = 0.0  # where the last timed text ended in the window (0: no text)


def as_runtime(model: AsrModel) -> AsrRuntime:
    """The runtime to decode with: a plain openai-whisper model runs as fp32, which gives
    whisper.decode's tokens exactly (tests/test_decode.py)."""
    return model if isinstance(model, AsrRuntime) else make_runtime(model, "fp32")


def weak(result: Decoded, options: AsrOptions) -> bool:
    """Greedy decoding's own signals say its text may be wrong: a low average log-probability
    or a repetitive text, on a window that is not silence (Whisper's no-speech rule)."""
    silent = (
        result.no_speech_prob > options.no_speech_max and result.avg_logprob < options.logprob_min
    )
    return not silent and (
        result.avg_logprob < options.beam_logprob
        or result.compression_ratio > options.compression_ratio_max
    )


def second_pass(
    runtime: AsrRuntime, audio: list[np.ndarray], first: list[Decoded], options: AsrOptions
) -> list[Decoded]:
    """Confidence-driven decoding: the windows whose greedy result is weak are decoded again,
    together, with beam search (and the hotword prompt); the beam's text replaces the greedy
    one where it scores higher (average log-probability) without looping. Windows whose greedy
    result is confident keep it, so beam accuracy costs a fraction of beam time."""
    redo = [i for i, r in enumerate(first) if weak(r, options)]
    if options.beam_size <= 1 or not redo:
        return first
    again = decode_batch(runtime, [audio[i] for i in redo], 0.0, options.beam_size, options.prompt)
    out = list(first)
    for i, beam in zip(redo, again, strict=True):
        if beam.compression_ratio <= options.compression_ratio_max and (
            beam.avg_logprob >= first[i].avg_logprob
            or first[i].compression_ratio > options.compression_ratio_max
        ):
            out[i] = beam
    return out


def unprompted_retry(
    runtime: AsrRuntime, audio: list[np.ndarray], first: list[Decoded], options: AsrOptions
) -> list[Decoded]:
    """With the hotword prompt, a window that holds speech but decodes with an average
    log-probability under Whisper's own fallback threshold (logprob_min), or loops (compression
    ratio over compression_ratio_max), is decoded again without the prompt: a prompt can pull the
    decoder into copying it. The plain text is kept where it does not loop and either the
    prompted one looped or it scores higher. Seen on a sample call: the closing agent turns
    对，就这样，还有别的事吗？行，那就先这样，再见 came out as 请问您、您 (-1.42), and in another
    run as 请问您、您、您… at -0.17 (a loop Whisper is sure of), which the sampling fallback then
    turned into hotwords or Japanese; decoded without the prompt they are right.
    Windows Whisper hears as silence are left alone (unprompted, noise can read as text)."""
    if not options.prompt:
        return first
    loops = [r.compression_ratio > options.compression_ratio_max for r in first]
    redo = [
        i
        for i, r in enumerate(first)
        if (r.avg_logprob < options.logprob_min or loops[i])
        and r.no_speech_prob <= options.no_speech_max
    ]
    if not redo:
        return first
    again = decode_batch(runtime, [audio[i] for i in redo], 0.0)
    out = list(first)
    for i, plain in zip(redo, again, strict=True):
        if plain.compression_ratio <= options.compression_ratio_max and (
            loops[i] or plain.avg_logprob > first[i].avg_logprob
        ):
            out[i] = plain
    return out


def unechoed(timed: list[TimedText], result: Decoded, options: AsrOptions) -> list[TimedText]:
    """The timed texts less those that only repeat the hotword prompt in a window Whisper
    itself thinks holds no speech. On silence, noise and hum a prompted Whisper copies its
    prompt with confidence (average log-probability about -0.1), which Whisper's own rule
    (no speech and a low log-probability) lets through; in a window with speech a genuine
    您好 or 退款 is kept."""
    if not options.prompt or result.no_speech_prob <= options.no_speech_max:
        return timed
    return [t for t in timed if not echoes_prompt(t[2], options.prompt)]


def echo_only(result: Decoded, options: AsrOptions) -> bool:
    """The whole window is the hotword prompt copied where Whisper hears no speech."""
    no_speech = result.no_speech_prob > options.no_speech_max
    return bool(options.prompt) and no_speech and echoes_prompt(result.text, options.prompt)


def decode_pass(model: AsrModel, windows: list[Window], options: AsrOptions) -> list[WindowText]:
    """Decode windows in batches; re-decode a window at rising temperature when it loops."""
    if not windows:
        return []
    runtime = as_runtime(model)
    out: list[WindowText] = []
    for i in range(0, len(windows), options.batch_size):
        batch = windows[i : i + options.batch_size]
        results = decode_batch(runtime, [w.audio for w in batch], 0.0, prompt=options.prompt)
        results = second_pass(runtime, [w.audio for w in batch], results, options)
        results = unprompted_retry(runtime, [w.audio for w in batch], results, options)
        for window, result in zip(batch, results, strict=True):
            for temperature in options.fallback_temperatures:
                # a loop that only repeats the prompt where Whisper hears no speech is dropped
                # whole (unechoed): sampling it again would cost 5 decodes per temperature
                if result.compression_ratio <= options.compression_ratio_max or echo_only(
                    result, options
                ):
                    break
                prompt = options.prompt
                result = decode_batch(runtime, [window.audio], temperature, prompt=prompt)[0]
            texts: tuple[tuple[str, ...], ...] = tuple(() for _ in window.pieces)
            covered = tuple(0.0 for _ in window.pieces)
            end_s = 0.0
            # Whisper's own silence rule: likely no speech and not confidently decoded.
            silent = (
                result.no_speech_prob > options.no_speech_max
                and result.avg_logprob < options.logprob_min
            )
            if not silent:
                timed = timed_segments(
                    result.tokens, runtime.tokenizer, len(window.audio) / SAMPLE_RATE
                )
                texts, covered = assign_texts(
                    window.pieces, unechoed(timed, result, options), options
                )
                end_s = max((end for _, end, _ in timed), default=0.0)
            out.append(
                WindowText(
                    texts,
                    covered,
                    result.avg_logprob,
                    result.no_speech_prob,
                    result.compression_ratio,
                    end_s,
                )
            )
    return out


def seek(
    model: AsrModel, windows: list[Window], first: list[WindowText], options: AsrOptions
) -> tuple[list[list[tuple[str, ...]]], list[list[float]]]:
    """Whisper's seek, for packed windows: where decoding stopped with `seek_min_s` or more of
    speech still ahead (an end-of-text before the window's last turns), decode again from the
    last timestamp, and add that text to the pieces it falls on. Up to `SEEKS` times."""
    texts = [list(res.texts) for res in first]
    covered = [list(res.covered_s) for res in first]
    todo = [(k, w, res.text_end_s) for k, (w, res) in enumerate(zip(windows, first, strict=True))]
    for _ in range(SEEKS):
        tails = [
            (
                k,
                Window(
                    w.call_id,
                    w.audio[int(end * SAMPLE_RATE) :],
                    tuple(p.shifted(end) for p in w.pieces),
                ),
            )
            for k, w, end in todo
            if end > 0 and speech_after(w, end) >= options.seek_min_s
        ]
        if not tails:
            break
        todo = []
        for (k, tail), res in zip(
            tails, decode_pass(model, [t for _, t in tails], options), strict=True
        ):
            for j, (more, cov) in enumerate(zip(res.texts, res.covered_s, strict=True)):
                texts[k][j] += more
                covered[k][j] += cov
            todo.append((k, tail, res.text_end_s))
    return texts, covered


def decode_windows(model: AsrModel, windows: list[Window], options: AsrOptions) -> list[WindowText]:
    """Decode packed windows, seek past early stops, then decode alone every piece still left
    uncovered.

    Whisper sometimes ends a packed window early (an end-of-text after the first pieces), which
    would silently drop the later turns: the window is decoded again from where its text stopped
    (`seek`). A piece still less than `retry_coverage` covered by timestamped text is decoded
    again on its own, and that text replaces the partial one.
    """
    model = as_runtime(model)  # once, not per pass
    first = decode_pass(model, windows, options)
    texts, covered = seek(model, windows, first, options)
    retry = [
        (w, k, j)
        for k, w in enumerate(windows)
        for j, p in enumerate(w.pieces)
        if covered[k][j] < options.retry_coverage * p.duration_s
    ]
    singles = []
    for w, _, j in retry:
        p = w.pieces[j]
        a, b = p.span
        clip = w.audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
        singles.append(Window(w.call_id, clip, (p.shifted(a),)))
    for (_, k, j), single in zip(retry, decode_pass(model, singles, options), strict=True):
        if single.texts[0]:
            texts[k][j] = single.texts[0]
            covered[k][j] = single.covered_s[0]
    return [
        WindowText(tuple(t), tuple(c), res.avg_logprob, res.no_speech_prob, res.compression_ratio)
        for t, c, res in zip(texts, covered, first, strict=True)
    ]


def utterances_from_windows(
    call_id: str,
    windows: list[Window],
    decoded: list[WindowText],
    redaction: RedactOptions,
    align: Aligner | None = None,
) -> tuple[list[Utterance], list[PiiSpan]]:
    """One utterance per VAD segment that got text, ordered by start time, PII-masked; and the
    masked spans with their times, so the report can mute them in the audio: from `align` (the
    words' own times) where it is given and succeeds, else by the span's share of the text."""
    rows: list[tuple[Segment, str, WindowText]] = []
    for window, result in zip(windows, decoded, strict=True):
        if window.call_id != call_id:
            continue
        for piece, parts in zip(window.pieces, result.texts, strict=True):
            text = simplify("".join(parts))
            if text:  # VAD fired but Whisper heard no words: no utterance is invented
                rows.append((piece.segment, text, result))
    rows.sort(key=lambda r: (round(r[0].start_s, 3), r[0].speaker))
    timed = [
        (seg.speaker, round(seg.start_s, 3), round(seg.end_s, 3), text) for seg, text, _ in rows
    ]
    redacted = redact_utterances(timed, redaction)  # a number read over a pause is seen whole
    if align is not None:
        redacted = [
            retime(red, times, redaction.mute_pad_s)
            if red.spans and (times := align(seg, text)) is not None
            else red
            for red, (seg, text, _) in zip(redacted, rows, strict=True)
        ]
    spans = _pii_rows(call_id, [i for i, _ in enumerate(rows)], redacted)
    return [
        Utterance(
            call_id,
            i,
            seg.speaker,
            round(seg.start_s, 3),
            round(seg.end_s, 3),
            red.text,
            res.avg_logprob,
            res.no_speech_prob,
            res.compression_ratio,
        )
        for i, ((seg, _, res), red) in enumerate(zip(rows, redacted, strict=True))
    ], spans


def _pii_rows(
    call_id: str, utterance_ids: list[int], redacted: list[RedactedUtterance]
) -> list[PiiSpan]:
    return [
        PiiSpan(
            call_id,
            utterance_ids[s.utterance_index],
            s.kind,
            s.start_char,
            s.end_char,
            round(s.start_s, 3),
            round(s.end_s, 3),
        )
        for r in redacted
        for s in r.spans
    ]


def remask_utterances(
    stored: list[Utterance], redaction: RedactOptions
) -> tuple[list[Utterance], list[PiiSpan]]:
    """A stored call's utterances masked again under today's rules: those whose text changed,
    and the spans masked now, their characters counted in the text as it was stored. The text
    is masked already, so what was masked stays masked and only what older rules let through is
    masked now; masking it again changes nothing (idempotent)."""
    timed = [(u.speaker, u.start_s, u.end_s, u.text) for u in stored]
    redacted = redact_utterances(timed, redaction)
    changed = [
        replace(u, text=r.text) for u, r in zip(stored, redacted, strict=True) if r.text != u.text
    ]
    if not stored:
        return changed, []
    return changed, _pii_rows(stored[0].call_id, [u.utterance_id for u in stored], redacted)


def speech_coverage(
    call_id: str, windows: list[Window], decoded: list[WindowText]
) -> dict[str, Coverage]:
    """Per speaker: VAD speech time, and how much of it lies under timestamped text we kept.

    The completeness audit: a transcript that covers little of the speech lost words (an early
    end-of-text, a dropped window); downstream figures on it would silently be wrong.
    """
    speech = {"agent": 0.0, "customer": 0.0}
    covered = {"agent": 0.0, "customer": 0.0}
    for window, result in zip(windows, decoded, strict=True):
        if window.call_id != call_id:
            continue
        for piece, parts, cov in zip(window.pieces, result.texts, result.covered_s, strict=True):
            speaker = piece.segment.speaker
            speech[speaker] += piece.duration_s
            if simplify("".join(parts)):  # text that survived is what the figures are built on
                covered[speaker] += min(cov, piece.duration_s)
    return {s: Coverage(round(speech[s], 3), round(covered[s], 3)) for s in speech}


def transcribe_calls(
    model: AsrModel,
    calls: list[tuple[str, CallAudio, list[Segment]]],
    options: AsrOptions,
) -> dict[str, Transcript]:
    """Transcribe several calls' segments together, batching windows across calls."""
    windows = [
        w for call_id, audio, segs in calls for w in pack_windows(call_id, audio, segs, options)
    ]
    runtime = as_runtime(model)  # once: decoding and the PII timing share it
    decoded = decode_windows(runtime, windows, options)
    out = {}
    for call_id, audio, _ in calls:
        align = partial(_align_segment, runtime, audio)
        utterances, pii = utterances_from_windows(
            call_id, windows, decoded, options.redaction, align
        )
        out[call_id] = Transcript(utterances, speech_coverage(call_id, windows, decoded), pii)
    return out


def _align_segment(
    runtime: AsrRuntime, audio: CallAudio, seg: Segment, text: str
) -> CharTimes | None:
    return char_times(
        runtime.model, runtime.tokenizer, audio.clip(seg.speaker, seg.start_s, seg.end_s), text
    )
