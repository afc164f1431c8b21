"""pipeline.report on a real small DuckDB file and real (synthetic) recordings.

The database is built through pipeline.store (its schema, write_frame); recordings are stereo
8 kHz WAVs written with soundfile: the agent's channel holds a pure tone, the customer's channel
noise, so a clip's dominant frequency tells which channel it was cut from.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline import store
from pipeline.catalogue import DEFAULT_PATH, load_catalogue
from pipeline.config import Config, default_config
from pipeline.report import build_report, write_report
from pipeline.report.clips import CLIP_PAD_S, encode_clip
from pipeline.report.views import drift_summary
from pipeline.store import reads

AGENT = "A007"
FILE_SR = 8_000
CALL_S = 12.0
AGENT_TONE_HZ = 440.0
XSS = "<script>alert(1)</script>"
CONFIG = default_config()

# call_id -> (recorded_at, cohort, tenure_days, channels, topic)
CALLS = {
    "e1": ("2024-01-20 10:00", "early", 19, "agent_left", "账单 <i>billing</i>"),
    "e2": ("2024-02-10 11:00", "early", 40, "agent_right", "退款"),
    "c1": ("2024-12-01 09:30", "current", 335, "agent_left", "账单 <i>billing</i>"),
    "c2": ("2024-12-15 14:00", "current", 349, "agent_right", "退款"),
}

# Aligned agent answers: (pair_id, early utterance, current utterance), each (id, start, end, text)
ALIGNED = [
    ("e1~c1", (1, 0.1, 2.5, "您好，请问有什么可以帮您？"), (1, 1.0, 3.0, "说吧，什么事。")),
    (
        "e1~c1",
        (3, 4.0, 7.5, "首先，您的账单包含月租。" + XSS),
        (3, 5.0, 11.9, "我已经说过了，你听我说。"),
    ),
    ("e2~c2", (1, 2.0, 5.0, "退款一般三到五个工作日到账。"), (1, 3.0, 4.2, "等着吧。")),
]
CUSTOMER = {"e1~c1": ("我的账单不对", "账单怎么又多了"), "e2~c2": ("退款多久到", "钱什么时候退")}


def write_recording(path: Path, agent_left: bool, seed: int) -> None:
    t = np.arange(int(CALL_S * FILE_SR)) / FILE_SR
    agent = 0.3 * np.sin(2 * np.pi * AGENT_TONE_HZ * t)
    customer = 0.2 * np.random.default_rng(seed).standard_normal(len(t))
    pair = (agent, customer) if agent_left else (customer, agent)
    sf.write(path, np.stack(pair, axis=1).astype(np.float32), FILE_SR, subtype="PCM_16")


def build_db(root: Path) -> Path:
    audio_dir = root / "audio"
    audio_dir.mkdir()
    db = root / "calls.duckdb"
    con = store.connect(db)

    call_log, derived, figures = [], [], []
    for i, (call_id, (recorded, cohort, tenure, channels, topic)) in enumerate(CALLS.items()):
        write_recording(audio_dir / f"{call_id}.wav", channels == "agent_left", seed=i)
        call_log.append(
            {
                "call_id": call_id,
                "agent_id": AGENT,
                "recorded_at": pd.Timestamp(recorded),
                "agent_hired_at": pd.Timestamp("2024-01-01").date(),
                "topic": topic,
                "channels": channels,
                "folder": str(audio_dir),
                "path": f"{call_id}.wav",
                "duration_s": CALL_S,
                "status": "ok",
            }
        )
        current = cohort == "current"
        derived.append(
            {
                "call_id": call_id,
                "tenure_days": tenure,
                "cohort": cohort,
                "agitation": 1.4 + 0.1 * i if current else -0.1 * i,
            }
        )
        figures.append(
            {
                "call_id": call_id,
                "agent_speech_rate_cpm": 260.0 + i if current else 210.0 - i,
                "agent_loudness_dbfs": -20.0 - i,
                "agent_impatience_count": 2 + i if current else 0,
                "agent_confirmation_count": 0 if current else 2 + i,
                "agent_interruptions": i,
            }
        )
    # a second agent, and a failed call: neither may leak into A007's report
    call_log.append(
        {
            "call_id": "x1",
            "agent_id": "B001",
            "recorded_at": pd.Timestamp("2024-03-01"),
            "folder": str(audio_dir),
            "path": "x1.wav",
            "status": "ok",
        }
    )
    call_log.append(
        {
            "call_id": "f1",
            "agent_id": AGENT,
            "recorded_at": pd.Timestamp("2024-06-01"),
            "folder": str(audio_dir),
            "path": "gone.wav",
            "status": "failed",
            "error": "unreadable audio",
        }
    )
    store.write_frame(con, "call_log", pd.DataFrame(call_log))
    store.write_frame(con, "call_derived", pd.DataFrame(derived))
    store.write_frame(con, "call_figures", pd.DataFrame(figures))

    utts, utt_derived, aligned, pairs = [], [], [], {}
    for n, (pair_id, (eu, es, ee, et), (cu, cs, ce, ct)) in enumerate(ALIGNED):
        early_id, current_id = pair_id.split("~")
        pairs[pair_id] = {
            "pair_id": pair_id,
            "agent_id": AGENT,
            "early_call_id": early_id,
            "current_call_id": current_id,
            "topic": CALLS[early_id][4],
            "similarity": 0.9 if pair_id == "e1~c1" else 0.5,
        }
        e_ctx, c_ctx = CUSTOMER[pair_id]
        for call_id, uid, start, end, text, ctx in (
            (early_id, eu, es, ee, et, e_ctx),
            (current_id, cu, cs, ce, ct, c_ctx),
        ):
            utts.append(
                {
                    "call_id": call_id,
                    "utterance_id": uid - 1,
                    "speaker": "customer",
                    "start_s": max(start - 1.0, 0.0),
                    "end_s": start,
                    "text": ctx,
                }
            )
            utts.append(
                {
                    "call_id": call_id,
                    "utterance_id": uid,
                    "speaker": "agent",
                    "start_s": start,
                    "end_s": end,
                    "text": text,
                    "impatience_hits": 1 if "说过了" in text else 0,
                }
            )
            utt_derived.append(
                {
                    "call_id": call_id,
                    "utterance_id": uid,
                    "agitation": 1.8 if call_id == "c2" else 0.2,
                }
            )
        aligned.append(
            {
                "pair_id": pair_id,
                "agent_id": AGENT,
                "early_call_id": early_id,
                "current_call_id": current_id,
                "early_utterance_id": eu,
                "current_utterance_id": cu,
                "similarity": 0.4,
                "early_customer_text": e_ctx + (XSS if n == 0 else ""),
                "early_text": et,
                "current_customer_text": c_ctx,
                "current_text": ct,
                "early_start_s": es,
                "early_end_s": ee,
                "current_start_s": cs,
                "current_end_s": ce,
                "delta_speech_rate_cpm": 40.0 + n,
                "delta_pitch_vs_baseline_st": 0.5,
                "delta_loudness_db": -6.0,
                "delta_agitation": 1.2 if n else None,
            }
        )
    store.write_frame(con, "utterance_log", pd.DataFrame(utts))
    store.write_frame(con, "utterance_derived", pd.DataFrame(utt_derived))
    store.write_frame(con, "call_pairs", pd.DataFrame(list(pairs.values())))
    store.write_frame(con, "aligned_utterances", pd.DataFrame(aligned))
    store.write_frame(
        con,
        "agent_baselines",
        pd.DataFrame(
            [
                {
                    "agent_id": AGENT,
                    "baseline_source": "early",
                    "speech_rate_cpm_std": 25.0,
                    "pitch_st_std": 1.0,
                    "loudness_dbfs_std": 2.0,
                }
            ]
        ),
    )
    drift = [  # metric, early, current, effect size
        ("agent_politeness_count", 8.0, 5.0, -0.9),  # down: worse
        ("agitation", -0.05, 1.45, 3.2),  # up: worse, the biggest
        ("agent_speech_rate_cpm", 209.5, 262.5, 2.1),  # up: worse
        ("agent_repeat_count", 2.0, 1.0, -0.6),  # down: better
        ("agent_pitch_median_hz", 200.0, 205.0, 0.4),  # no judged direction
        ("customer_confusion_count", 1.0, 0.5, None),  # down: better, no effect size
    ]
    store.write_frame(
        con,
        "agent_drift",
        pd.DataFrame(
            [
                {
                    "agent_id": AGENT,
                    "metric": m,
                    "early_mean": e,
                    "current_mean": c,
                    "delta": c - e,
                    "n_early": 2,
                    "n_current": 2,
                    "effect_size": d,
                }
                for m, e, c, d in drift
            ]
        ),
    )
    con.close()
    return db


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return build_db(tmp_path)


def render(db: Path, config: Config = CONFIG, **kwargs) -> str:
    con = store.connect(db, read_only=True)
    try:
        return build_report(con, AGENT, config, **kwargs)
    finally:
        con.close()


AUDIO_RE = re.compile(r'<audio\b[^>]*\bsrc="data:(audio/[a-z0-9.+-]+);base64,([A-Za-z0-9+/=]+)"')


def clips(html: str) -> list[tuple[str, np.ndarray, int]]:
    """(mime, samples, sample rate) of every embedded clip, in page order."""
    out = []
    for mime, payload in AUDIO_RE.findall(html):
        data, sr = sf.read(io.BytesIO(base64.b64decode(payload, validate=True)), dtype="float32")
        out.append((mime, data, sr))
    return out


def without_clips(html: str) -> str:
    """The page minus base64 payloads, so short strings cannot match by chance inside them."""
    return re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", html)


def expected_duration(start: float, end: float) -> float:
    return min(end + CLIP_PAD_S, CALL_S) - max(start - CLIP_PAD_S, 0.0)


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


def test_report_names_agent_and_shows_every_aligned_text(db: Path) -> None:
    html = render(db)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert AGENT in html
    for _, (_, _, _, early_text), (_, _, _, current_text) in ALIGNED:
        # the XSS probe is checked escaped below; compare the text before it here
        assert early_text.replace(XSS, "") in html
        assert current_text in html
    for early_ctx, current_ctx in CUSTOMER.values():
        assert early_ctx in html and current_ctx in html
    text = without_clips(html)
    assert "B001" not in text and "x1.wav" not in text and ">x1<" not in text  # only A007's data


def test_one_playable_clip_per_aligned_side_with_expected_duration(db: Path) -> None:
    found = clips(render(db))
    # page order: pairs by similarity (e1~c1 first), answers in order, early then current
    expected = [
        (s, e) for _, (_, es, ee, _), (_, cs, ce, _) in ALIGNED for s, e in ((es, ee), (cs, ce))
    ]
    assert len(found) == len(expected) == 2 * len(ALIGNED)
    for (mime, data, sr), (start, end) in zip(found, expected, strict=True):
        assert mime in ("audio/mpeg", "audio/wav")
        assert sr in (8_000, 16_000)
        assert data.ndim == 1  # one channel: the agent's
        assert len(data) / sr == pytest.approx(expected_duration(start, end), abs=0.08)
        # the agent channel carries the tone whether it is left (e1, c1) or right (e2, c2)
        assert dominant_hz(data, sr) == pytest.approx(AGENT_TONE_HZ, abs=15)


def test_transcript_and_ids_are_escaped(db: Path) -> None:
    html = render(db)
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<i>billing</i>" not in html and "&lt;i&gt;billing&lt;/i&gt;" in html
    # only the page's own two: the scoring data (JSON) and the scoring script
    assert html.lower().count("<script") == 2
    assert '<script type="application/json" id="cr-data">' in html


def test_page_works_offline(db: Path) -> None:
    html = render(db)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html.lower() and "@import" not in html


def test_drift_summary_most_worrying_first(db: Path) -> None:
    con = store.connect(db, read_only=True)
    rows = drift_summary(reads.agent_drift(con, AGENT), load_catalogue(DEFAULT_PATH))
    con.close()
    assert [r.metric for r in rows] == [
        "agitation",
        "agent_speech_rate_cpm",
        "agent_politeness_count",  # worse, by |d|
        "agent_pitch_median_hz",  # direction not judged
        "agent_repeat_count",
        "customer_confusion_count",  # better; no d last
    ]
    verdicts = {r.metric: (r.verdict, r.level) for r in rows}
    assert verdicts["agitation"] == ("worse", "strong")
    assert verdicts["agent_politeness_count"] == ("worse", "strong")
    assert verdicts["agent_repeat_count"] == ("better", "medium")
    assert verdicts["customer_confusion_count"] == ("better", "na")


def test_recording_properties_come_last_and_are_never_judged() -> None:
    """A louder recording chain moves raw loudness by a huge effect: shown, tagged, not coloured."""
    frame = pd.DataFrame(
        [
            ("agent_loudness_dbfs", -30.0, -14.0, 16.0, 6.5),
            ("agent_asr_coverage", 0.97, 0.90, -0.07, -0.9),  # a fall would be "worse"
            ("agent_loudness_vs_customer_db", 1.0, 0.8, -0.2, -0.1),
            ("agitation", 0.0, 0.3, 0.3, 0.4),
        ],
        columns=["metric", "early_mean", "current_mean", "delta", "effect_size"],
    ).assign(n_early=4, n_current=4)
    rows = drift_summary(frame, load_catalogue(DEFAULT_PATH))
    assert [(r.metric, r.verdict) for r in rows] == [
        ("agitation", "worse"),
        ("agent_loudness_vs_customer_db", "neutral"),
        ("agent_loudness_dbfs", "recording"),
        ("agent_asr_coverage", "recording"),
    ]


def test_charts_are_inline_svg_with_cohort_colours(db: Path) -> None:
    html = render(db)
    tenure = html.split('id="charts"', 1)[1].split('id="coaching"', 1)[0]
    assert tenure.count("<svg") == 6  # the coaching timelines follow in their own section
    assert html.count('class="pt-early"') == 6 * 2 and html.count('class="pt-current"') == 6 * 2


def test_overview_lists_flagged_current_utterances(db: Path) -> None:
    html = render(db)
    overview = html.split('id="flagged"', 1)[1].split('id="pairs"', 1)[0]
    assert "等着吧。" in overview  # agitation 1.8 in a current call
    assert "我已经说过了，你听我说。" in overview  # impatience phrase
    assert "退款一般三到五个工作日到账。" not in overview  # early call


def test_overview_threshold_comes_from_config(db: Path) -> None:
    config = replace(CONFIG, agitation=replace(CONFIG.agitation, high=2.0))
    html = render(db, config)
    overview = html.split('id="flagged"', 1)[1].split('id="pairs"', 1)[0]
    assert "agitation &gt; 2.0" in overview
    assert "等着吧。" not in overview  # agitation 1.8 is under the raised threshold
    assert "我已经说过了，你听我说。" in overview  # impatience phrases flag regardless


def test_changes_listed_largest_first_with_units(db: Path) -> None:
    html = render(db)
    first = html.split('class="changes"', 2)[1]
    # loudness -6 dB is 3 baseline σ, speech rate +40 字/分钟 is 1.6 σ, pitch 0.5 st is 0.5 σ
    assert first.index("-6 dB") < first.index("+40 字/分钟") < first.index("+0.50 st")


def test_max_pairs_limits_pairs(db: Path) -> None:
    html = render(db, max_pairs=1)
    assert len(clips(html)) == 4  # the two answers of e1~c1, the most similar pair
    assert "showing 1 of 2 pairs" in html
    assert "等着吧。" not in html.split('id="pairs"', 1)[1]


def test_unknown_agent_raises_with_known_ids(db: Path) -> None:
    con = store.connect(db, read_only=True)
    try:
        with pytest.raises(ValueError, match=r"unknown agent 'nobody'.*A007.*B001"):
            build_report(con, "nobody", CONFIG)
    finally:
        con.close()


def test_missing_recording_shows_note_and_report_still_renders(db: Path) -> None:
    (db.parent / "audio" / "c1.wav").unlink()
    html = render(db)
    assert html.count("audio unavailable: file not found") == 2  # c1's two answers
    assert "c1.wav" in html
    assert len(clips(html)) == 2 * len(ALIGNED) - 2
    assert "我已经说过了，你听我说。" in html and "等着吧。" in html


def test_unreadable_recording_shows_reason(db: Path) -> None:
    (db.parent / "audio" / "e2.wav").write_bytes(b"not audio at all")
    html = render(db)
    assert html.count("audio unavailable: ") == 1
    assert len(clips(html)) == 2 * len(ALIGNED) - 1


def test_write_report_opens_read_only_and_writes_file(db: Path, tmp_path: Path) -> None:
    out = write_report(db, AGENT, tmp_path / "reports" / "a007.html", CONFIG)
    assert out.is_file() and AGENT in out.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="A007"):
        write_report(db, "nobody", tmp_path / "x.html", CONFIG)
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing.duckdb", AGENT, tmp_path / "y.html", CONFIG)


@pytest.mark.parametrize("fmt", ["MP3", "WAV"])
def test_encode_clip_round_trips(fmt: str) -> None:
    if fmt == "MP3" and "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without MP3")
    x = (0.2 * np.sin(2 * np.pi * 300 * np.arange(24_000) / 16_000)).astype(np.float32)
    mime, data = encode_clip(x, 16_000, fmt)
    assert mime == {"MP3": "audio/mpeg", "WAV": "audio/wav"}[fmt]
    y, sr = sf.read(io.BytesIO(data))
    assert sr == 16_000 and len(y) / sr == pytest.approx(1.5, abs=0.08)


def test_mono_recording_clips_the_mix(db: Path) -> None:
    t = np.arange(int(CALL_S * FILE_SR)) / FILE_SR
    mono = (0.3 * np.sin(2 * np.pi * AGENT_TONE_HZ * t)).astype(np.float32)
    sf.write(db.parent / "audio" / "c2.wav", mono, FILE_SR, subtype="PCM_16")
    con = store.connect(db)
    con.execute("UPDATE call_log SET channels = 'mono' WHERE call_id = 'c2'")
    con.close()
    found = clips(render(db))
    assert len(found) == 2 * len(ALIGNED)
    _, data, sr = found[-1]  # c2's answer, the last clip on the page
    assert len(data) / sr == pytest.approx(expected_duration(3.0, 4.2), abs=0.08)
    assert dominant_hz(data, sr) == pytest.approx(AGENT_TONE_HZ, abs=15)


def test_without_tenure_charts_use_recording_dates(db: Path) -> None:
    con = store.connect(db)
    con.execute("UPDATE call_derived SET tenure_days = NULL")
    con.close()
    html = render(db)
    assert "录音日期 recorded_at" in html and "2024-01-20" in html


def test_agent_without_derived_data_still_renders(db: Path) -> None:
    con = store.connect(db, read_only=True)
    try:
        html = build_report(con, "B001", CONFIG)  # one call, never measured or paired
    finally:
        con.close()
    assert "B001" in html and "无数据 no data" in html
    assert "No early/current call pairs" in html and "<audio" not in html
