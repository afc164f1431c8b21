"""Window packing, timestamp parsing and text assignment; the real model on real speech and
on line noise (where no text may be invented)."""

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from whisper.tokenizer import get_tokenizer

from pipeline.asr.verify import VERIFY_AUDIO, VERIFY_TEXT
from pipeline.audio import SAMPLE_RATE, load_call
from pipeline.config import default_config
from pipeline.evaluation import cer
from pipeline.records import CallAudio, Segment
from pipeline.transcribe import WindowText, seek, speech_coverage, transcribe_calls
from pipeline.vad import find_segments, load_vad_model
from pipeline.windows import (
    Piece,
    Window,
    assign_texts,
    onset_lead,
    pack_windows,
    snap_cut,
    timed_segments,
)

CONFIG = default_config()
ASR = CONFIG.asr


def _segments(audio: CallAudio) -> list[Segment]:
    return find_segments(audio, CONFIG.vad, load_vad_model())


def _audio(seconds: float) -> CallAudio:
    n = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(0)
    tracks = (rng.normal(0, 0.1, n).astype(np.float32), rng.normal(0, 0.1, n).astype(np.float32))
    return CallAudio(SAMPLE_RATE, seconds, 8000, 2, "agent_left", "x", tracks)


def test_windows_hold_one_speaker_and_at_most_30_s():
    segs = [
        Segment(i * 4.0, i * 4.0 + 3.0, "agent" if i % 2 == 0 else "customer") for i in range(30)
    ]
    windows = pack_windows("c", _audio(125.0), segs, ASR)
    for w in windows:
        assert len(w.audio) <= 30 * SAMPLE_RATE
        assert len({p.segment.speaker for p in w.pieces}) == 1
        # each clip (its onset lead and speech) is followed by the gap, then the next clip
        assert w.pieces[0].offset_s == 0.0
        for a, b in zip(w.pieces, w.pieces[1:], strict=False):
            assert b.offset_s == pytest.approx(a.span[1] + ASR.gap_s, abs=1e-3)
        assert len(w.audio) / SAMPLE_RATE == pytest.approx(w.pieces[-1].span[1], abs=1e-3)
    assert sum(len(w.pieces) for w in windows) == 30


def test_a_mono_track_is_packed_in_time_order_whoever_speaks():
    """Transcribe first, attribute after: a mono call's windows hold its speech in time order;
    voice turns that touch (one stretch of speech the split cut in two) are one clip, with no
    silence put between them, so the words Whisper hears do not depend on the split."""
    n = int(40.0 * SAMPLE_RATE)
    mix = np.random.default_rng(1).normal(0, 0.1, n).astype(np.float32)
    audio = CallAudio(SAMPLE_RATE, 40.0, 8000, 1, "mono", "x", (mix,))
    segs = [
        Segment(1.0, 2.5, "agent"),
        Segment(2.5, 4.0, "customer"),  # touches: the same stretch of speech
        Segment(6.0, 8.0, "agent"),
        Segment(12.0, 14.0, "customer"),
    ]
    windows = pack_windows("c", audio, segs, ASR)
    (window,) = windows
    assert [p.segment for p in window.pieces] == segs
    first, second = window.pieces[:2]
    assert second.speech[0] == pytest.approx(first.speech[1], abs=1e-3)  # no gap inside
    a, b = first.span[0], second.span[1]
    clip = window.audio[round(a * SAMPLE_RATE) : round(b * SAMPLE_RATE)]
    start = round((1.0 - first.lead_s) * SAMPLE_RATE)
    np.testing.assert_array_equal(clip, mix[start : start + len(clip)])
    assert window.pieces[2].offset_s == pytest.approx(second.span[1] + ASR.gap_s, abs=1e-3)


def test_onset_lead_stops_halfway_to_the_previous_voice_heard_on_the_track():
    a, b, c = Segment(0.05, 2.0, "agent"), Segment(2.1, 4.0, "agent"), Segment(9.0, 10.0, "agent")
    own = [a, b, c]
    assert onset_lead(a, own, 0.3) == pytest.approx(0.05)  # call start
    assert onset_lead(b, own, 0.3) == pytest.approx(0.05)  # a 0.1 s pause since a
    assert onset_lead(c, own, 0.3) == pytest.approx(0.3)
    assert onset_lead(c, own, 0.0) == 0.0
    # a mono mix: the other speaker's words are heard too, so they bound the lead as well
    other = Segment(4.2, 8.5, "customer")
    assert onset_lead(c, [*own, other], 0.3) == pytest.approx(0.25)
    assert onset_lead(other, [other, Segment(5.0, 6.0, "agent")], 0.3) == 0.0


def test_each_clip_starts_onset_s_before_its_speech():
    audio = _audio(20.0)
    segs = [Segment(2.0, 4.0, "agent"), Segment(9.0, 11.0, "agent")]
    (window,) = pack_windows("c", audio, segs, ASR)
    agent = audio.tracks[0]
    for piece in window.pieces:
        assert piece.lead_s == pytest.approx(ASR.onset_s)
        a, b = piece.span
        clip = window.audio[round(a * SAMPLE_RATE) : round(b * SAMPLE_RATE)]
        start = round((piece.segment.start_s - ASR.onset_s) * SAMPLE_RATE)
        np.testing.assert_array_equal(clip, agent[start : start + len(clip)])


def test_timestamp_tokens_split_text_into_timed_segments():
    tok = get_tokenizer(True, num_languages=99, language="zh", task="transcribe")
    ts = lambda s: tok.timestamp_begin + round(s / 0.02)  # noqa: E731
    tokens = [ts(0.0), *tok.encode("您好"), ts(1.0), ts(1.6), *tok.encode("请问"), ts(2.4), tok.eot]
    assert timed_segments(tokens, tok, 30.0) == [(0.0, 1.0, "您好"), (1.6, 2.4, "请问")]


def test_text_spanning_two_pieces_is_split_by_overlap():
    pieces = (Piece(Segment(10, 12, "agent"), 0.0), Piece(Segment(20, 22, "agent"), 2.6))
    timed = [(0.0, 2.0, "第一句话"), (2.6, 4.6, "第二句话"), (1.0, 3.6, "一半一半")]
    texts, covered = assign_texts(pieces, timed, ASR)
    assert texts == (("第一句话", "一半"), ("第二句话", "一半"))
    assert covered == pytest.approx((3.0, 3.0))


def test_a_split_text_is_cut_at_the_nearest_sentence_end_not_inside_a_clause():
    # half the time over each turn, but the first turn's words end at its question mark:
    # a cut by share alone would hand 吗？ to the next turn (the prompted decoder's 对|吗？)
    pieces = (Piece(Segment(10, 12, "customer"), 0.0), Piece(Segment(20, 22, "customer"), 2.6))
    timed = [(1.0, 3.6, "我再打电话，对吗？没有了谢谢")]
    texts, _ = assign_texts(pieces, timed, ASR)
    assert texts == (("我再打电话，对吗？",), ("没有了谢谢",))
    # a full stop within reach beats a nearer comma; none within reach: cut by share
    assert snap_cut("慢一点很正常。你听我说，我不知道", 9, 4) == 7
    assert snap_cut("一二三四五六七八九十一二三四", 7, 4) == 7
    no_snap = replace(ASR, split_snap_chars=0)
    assert assign_texts(pieces, timed, no_snap)[0] == (("我再打电话，对",), ("吗？没有了谢谢",))


@pytest.mark.slow
def test_seek_decodes_on_from_where_the_text_stopped(asr_model):
    """A window whose first pass ended before its last turn (Whisper's early end-of-text) gets
    that turn from a decode that starts where the text stopped; earlier turns keep their text."""
    clip, _ = sf.read(VERIFY_AUDIO, dtype="float32")
    d = len(clip) / SAMPLE_RATE
    gap = np.zeros(int(ASR.gap_s * SAMPLE_RATE), np.float32)
    pieces = (
        Piece(Segment(0.0, d, "agent"), 0.0),
        Piece(Segment(20.0, 20 + d, "agent"), d + ASR.gap_s),
    )
    window = Window("c", np.concatenate([clip, gap, clip]), pieces)
    stopped = WindowText((("第一段",), ()), (d, 0.0), -0.2, 0.0, 1.0, text_end_s=d)
    texts, covered = seek(asr_model, [window], [stopped], ASR)
    assert texts[0][0] == ("第一段",) and covered[0][0] == d
    reference = VERIFY_TEXT.read_text(encoding="utf-8").strip()
    assert cer("".join(texts[0][1]), reference) <= 0.2
    assert covered[0][1] >= 0.8 * d
    # text that reached the last turn's end: nothing is decoded again (no model is needed)
    done = WindowText((("第一段",), ("第二段",)), (d, d), -0.2, 0.0, 1.0, text_end_s=2 * d + 0.6)
    assert seek(None, [window], [done], ASR) == ([[("第一段",), ("第二段",)]], [[d, d]])


def _call_with_clip(tmp_path, left_gap_s=3.0):
    clip, sr = sf.read(VERIFY_AUDIO, dtype="float32")
    assert sr == SAMPLE_RATE
    n = len(clip) + int((left_gap_s + 4) * sr)
    rng = np.random.default_rng(1)
    left, right = rng.normal(0, 1e-3, n), rng.normal(0, 1e-3, n)  # about -60 dBFS line noise
    start = int(left_gap_s * sr)
    left[start : start + len(clip)] += clip
    path = tmp_path / "call.wav"
    sf.write(path, np.stack([left, right], 1).astype(np.float32), sr)
    # the clip itself has leading and trailing silence: true speech edges by energy
    voiced = np.flatnonzero(np.abs(clip) > 0.02)
    return path, left_gap_s + voiced[0] / sr, left_gap_s + voiced[-1] / sr


@pytest.mark.slow
def test_real_speech_becomes_one_agent_utterance_with_its_text(asr_model, tmp_path):
    path, start, end = _call_with_clip(tmp_path)
    audio = load_call(path)
    segs = _segments(audio)
    transcript = transcribe_calls(asr_model, [("c", audio, segs)], ASR)["c"]
    utts = transcript.utterances
    assert [u.speaker for u in utts] == ["agent"]
    assert utts[0].start_s == pytest.approx(start, abs=0.3) and utts[0].end_s == pytest.approx(
        end, abs=0.3
    )
    assert cer(utts[0].text, VERIFY_TEXT.read_text(encoding="utf-8").strip()) <= 0.2
    assert utts[0].text == utts[0].text.encode("utf-8").decode("utf-8")
    assert "歡" not in utts[0].text and "请问" in utts[0].text  # simplified output


@pytest.mark.slow
def test_line_noise_and_silence_give_no_utterances(asr_model):
    rng = np.random.default_rng(2)
    n = 20 * SAMPLE_RATE
    tracks = (rng.normal(0, 1e-3, n).astype(np.float32), np.zeros(n, np.float32))
    audio = CallAudio(SAMPLE_RATE, 20.0, 8000, 2, "agent_left", "x", tracks)
    segs = _segments(audio)
    # even if VAD fired, Whisper must not invent text; force a decode of the whole noise too
    forced = segs or [Segment(0.0, 20.0, "agent")]
    assert transcribe_calls(asr_model, [("c", audio, forced)], ASR)["c"].utterances == []


def test_coverage_counts_speech_under_kept_text_per_speaker():
    pieces_a = (Piece(Segment(0, 4, "agent"), 0.0), Piece(Segment(10, 12, "agent"), 4.6))
    pieces_c = (Piece(Segment(5, 9, "customer"), 0.0),)
    windows = [
        Window("c", np.zeros(1), pieces_a),
        Window("c", np.zeros(1), pieces_c),
        Window("other", np.zeros(1), pieces_c),
    ]
    decoded = [
        WindowText((("您好请问",), ()), (4.0, 0.0), 0.0, 0.0, 1.0),  # second piece: no text
        WindowText((("字幕由",),), (3.0,), 0.0, 0.0, 1.0),  # customer: text kept (not filtered)
        WindowText((("x",),), (4.0,), 0.0, 0.0, 1.0),
    ]
    cov = speech_coverage("c", windows, decoded)
    assert (cov["agent"].speech_s, cov["agent"].covered_s) == (6.0, 4.0)
    assert cov["agent"].share == pytest.approx(4 / 6)
    assert cov["customer"].share == pytest.approx(3 / 4)
    assert speech_coverage("none", windows, decoded)["agent"].share is None
