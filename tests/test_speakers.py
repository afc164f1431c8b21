"""Mono speaker attribution (pipeline.speakers, pipeline.mono, pipeline.store.voices): the
agent-selection rule on crafted embeddings, the two-voice split on crafted windows, chunk
attribution and voice prints (kept in a real DuckDB file), the phrase tie-breaker after
transcription, and real mono mixes of sample calls, as recorded and with the customer speaking
first, through the functions the flow calls. The full measurement is scripts/eval_mono.py."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace

import numpy as np
import pytest

from pipeline import mono, store
from pipeline import speakers as spk
from pipeline.config import ConfigError, default_config
from pipeline.records import Coverage, Transcript, Utterance
from pipeline.rows import SpeakerAttribution
from pipeline.speakers import split as split_module
from tests.conftest import ROOT, require

CONFIG = default_config()
OPTS = CONFIG.speakers
PHRASES = mono.service_phrases(CONFIG.lexicon, OPTS)
DIM = spk.EMBED_DIM


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _voices(call_id: str, centroids: list[np.ndarray], speech=(30.0, 20.0)) -> spk.CallVoices:
    turns = tuple(spk.VoiceTurn(float(i), float(i) + 1.0, i % len(centroids)) for i in range(4))
    return spk.CallVoices(
        call_id,
        np.stack([_unit(c) for c in centroids]),
        tuple(speech[: len(centroids)]),
        turns,
        5.0,
    )


def _near(v: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at cosine `cos` from unit vector v."""
    r = rng.normal(size=v.shape)
    r = _unit(r - (r @ v) * v)
    return _unit(cos * v + np.sqrt(1 - cos**2) * r)


# ----------------------------------------------------------------------------- stage B rule


def test_recurrence_picks_the_voice_heard_in_every_call_whatever_its_order():
    rng = np.random.default_rng(1)
    agent = _unit(rng.normal(size=DIM))
    calls = []
    truth = {}
    for i in range(5):
        me = _near(agent, 0.93, rng)  # the agent, a little different each call
        # Customers change from call to call; call 0's customer sounds much like the agent.
        cust = _near(agent, 0.9, rng) if i == 0 else _near(agent, 0.6, rng)
        first = int(rng.integers(2))
        cents = [me, cust] if first == 0 else [cust, me]
        calls.append(_voices(f"c{i}", cents))
        truth[f"c{i}"] = first
    res = spk.choose_agent_voices("A", calls, OPTS)
    assert {cid: ch.agent_voice for cid, ch in res.choices.items()} == truth
    assert all(ch.decided_by == "recurrence" for ch in res.choices.values())
    # Customers change: not flagged, except where the customer sounds like the agent (call 0)
    assert [res.choices[f"c{i}"].customer_recurs for i in range(5)] == [True] + [False] * 4
    assert res.voice_print is not None and res.voice_print.source == "recurrence"
    assert float(res.voice_print.embedding @ agent) > 0.95


def test_a_mono_agent_whose_customer_recurs_is_flagged_and_settled_by_phrases_not_swapped():
    """A frequent caller (or a test line) in every call of a mono agent: both voices recur, so
    recurrence cannot tell them apart. Every call is flagged low-confidence, and the service
    phrases after transcription decide the sides instead of the recurrence guess."""
    rng = np.random.default_rng(4)
    agent, caller = _unit(rng.normal(size=DIM)), _unit(rng.normal(size=DIM))
    calls = []
    for i in range(4):
        cents = [_near(agent, 0.93, rng), _near(caller, 0.93, rng)]
        calls.append(_voices(f"c{i}", cents if i % 2 else cents[::-1]))
    res = spk.choose_agent_voices("A", calls, OPTS)
    for call in calls:
        choice = res.choices[call.call_id]
        assert choice.decided_by == "recurrence" and choice.customer_recurs
        assert mono.attribution_row(call.call_id, call, choice, OPTS).low_confidence
        # Whichever voice recurrence guessed, the side that greets and offers help is the agent.
        guess_is_agent = float(call.centroids[choice.agent_voice] @ agent) > 0.5
        greeting, request = "您好，这里是客服，有什么可以帮您", "我的订单还没到"
        tr, settled = mono.settle_by_phrases(
            _transcript(greeting, request) if guess_is_agent else _transcript(request, greeting),
            call,
            choice,
            PHRASES,
            OPTS,
        )
        assert settled.decided_by == "phrases" and settled.customer_recurs
        assert float(call.centroids[settled.agent_voice] @ agent) > 0.5
        assert "".join(u.text for u in tr.utterances if u.speaker == "agent") == greeting
        assert mono.attribution_row(call.call_id, call, settled, OPTS).low_confidence


def test_stereo_print_decides_a_single_mono_call_and_phrases_break_a_tie():
    rng = np.random.default_rng(2)
    agent = _unit(rng.normal(size=DIM))
    vp = spk.voice_print_from_stereo("A", [_near(agent, 0.97, rng), _near(agent, 0.97, rng)])
    assert vp is not None and vp.n_calls == 2
    call = _voices("m", [_near(agent, 0.5, rng), _near(agent, 0.95, rng)])
    ch = spk.choose_agent_voices("A", [call], OPTS, voice_print=vp).choices["m"]
    assert (ch.agent_voice, ch.decided_by) == (1, "voice_print") and ch.margin > 0.2
    # Two voices equally like the print: the service phrases decide, not the order.
    twin = _near(agent, 0.9, rng)
    tie = _voices("t", [twin, twin + 1e-4 * rng.normal(size=DIM)])
    hits = {
        "t": spk.phrase_hits(["好的，那我等两天吧", "您好，这里是客服，有什么可以帮您"], PHRASES)
    }
    assert hits["t"][1] > hits["t"][0]
    ch = spk.choose_agent_voices("A", [tie], OPTS, voice_print=vp, phrase_counts=hits).choices["t"]
    assert (ch.agent_voice, ch.decided_by) == (1, "phrases")


def test_without_print_or_second_call_phrases_then_talk_share_decide():
    rng = np.random.default_rng(3)
    call = _voices("solo", [rng.normal(size=DIM), rng.normal(size=DIM)], speech=(12.0, 40.0))
    ch = spk.choose_agent_voices("A", [call], OPTS).choices["solo"]
    assert (ch.agent_voice, ch.decided_by) == (1, "talk_share")
    ch = spk.choose_agent_voices("A", [call], OPTS, phrase_counts={"solo": (3, 0)}).choices["solo"]
    assert (ch.agent_voice, ch.decided_by) == (0, "phrases")
    one = _voices("one", [rng.normal(size=DIM)])
    ch = spk.choose_agent_voices("A", [one], OPTS).choices["one"]
    assert (ch.agent_voice, ch.decided_by) == (0, "single_voice")


def test_attribute_maps_voice_turns_to_agent_and_customer_segments():
    call = _voices("x", [np.ones(DIM), -np.ones(DIM)])
    choice = spk.AgentChoice("x", 1, (0.1, 0.9), 0.8, "voice_print")
    segs = spk.attribute(call, choice)
    assert [s.speaker for s in segs] == ["customer", "agent", "customer", "agent"]
    assert [(s.start_s, s.end_s) for s in segs] == [(t.start_s, t.end_s) for t in call.turns]


# ----------------------------------------------------------------------------- stage A split


def _crafted_windows(rng: np.random.Generator) -> tuple[spk.CallWindows, np.ndarray]:
    """Alternating turns of two voices that differ along one direction only a little, while
    what is said moves every window much more along another: plain k-means splits by content."""
    base, voice, content = (_unit(rng.normal(size=DIM)) for _ in range(3))
    spans, starts, index, emb = [], [], [], []
    t, truth_frames = 0.5, np.full(12_000, -1)
    for k in range(14):
        length = rng.uniform(4.0, 8.0)
        spans.append((t, t + length))
        who = k % 2
        truth_frames[int(t / 0.01) : int((t + length) / 0.01)] = who
        for s in np.arange(t, t + length - 1.6 + 1e-9, 0.4):
            e = (
                base
                + (0.05 if who == 0 else -0.05) * voice
                + rng.normal(scale=0.2) * content
                + 0.005 * rng.normal(size=DIM)
            )
            starts.append(s)
            index.append(k)
            emb.append(_unit(e))
        t += length + rng.uniform(0.6, 1.2)
    starts = np.array(starts)
    w = spk.CallWindows(
        "crafted",
        t + 1.0,
        tuple(spans),
        starts,
        starts + 1.6,
        np.array(index),
        np.array(emb, dtype=np.float32),
    )
    return w, truth_frames[: int(np.ceil(w.duration_s / 0.01)) + 1]


def _frame_accuracy(turns, truth: np.ndarray) -> float:
    pred = np.full(len(truth), -1)
    for tr in turns:
        pred[int(tr.start_s / 0.01) : int(tr.end_s / 0.01)] = tr.voice
    scored = truth >= 0
    right = (pred[scored] == truth[scored]).mean()
    return float(max(right, ((1 - pred[scored]) == truth[scored]).mean()))


def test_split_finds_the_voice_direction_where_plain_kmeans_splits_by_content():
    w, truth = _crafted_windows(np.random.default_rng(4))
    voices = spk.split_voices(w, OPTS)
    assert voices.n_voices == 2 and voices.separation > 2
    assert _frame_accuracy(voices.turns, truth) > 0.97
    # What the discriminant space is for: k-means on the raw embeddings gets about half.
    raw = split_module._kmeans2(w.embeddings.astype(np.float64), 10)
    win_truth = np.array([truth[int((s + 0.8) / 0.01)] for s in w.starts_s])
    agree = (raw == win_truth).mean()
    assert max(agree, 1 - agree) < 0.75


# ----------------------------------------------------------------------------- settings


def test_speaker_settings_are_the_speakers_section_and_phrases_come_from_the_lexicon():
    assert isinstance(OPTS, spk.SpeakerOptions) and OPTS.phrase_lists == ("greeting",)
    assert "您好" in PHRASES and "有什么可以帮您" in PHRASES
    with pytest.raises(ConfigError, match="nope is not a list"):
        mono.service_phrases(CONFIG.lexicon, replace(OPTS, phrase_lists=("greeting", "nope")))


# ----------------------------------------------------------------------------- chunks and prints


def _print(agent: np.ndarray, n: int, source="stereo") -> spk.VoicePrint:
    return spk.VoicePrint("A", _unit(agent).astype(np.float32), n, source)


def test_a_single_call_in_a_chunk_is_decided_by_the_stored_print_and_the_print_is_kept():
    rng = np.random.default_rng(5)
    agent = _unit(rng.normal(size=DIM))
    call = _voices("x", [_near(agent, 0.6, rng), _near(agent, 0.95, rng)])
    stored = {"A": _print(agent, 4)}
    segs, new, choices = mono.attribute_chunk([("m1", "A", call)], stored, {}, OPTS)
    ch = choices["m1"]
    assert (ch.call_id, ch.agent_voice, ch.decided_by, ch.print_calls) == (
        "m1",
        1,
        "voice_print",
        5,
    )
    assert [s.speaker for s in segs["m1"]] == ["customer", "agent", "customer", "agent"]
    assert new == {}  # a stereo print changes only with stereo calls
    row = mono.attribution_row("m1", call, ch, OPTS)
    assert (row.method, row.print_calls, row.separation) == ("voice_print", 5, 5.0)
    assert row.margin is not None and row.margin > 0.2


def test_stereo_calls_of_the_chunk_update_the_print_weighted_by_calls():
    rng = np.random.default_rng(6)
    old, new_emb = _unit(rng.normal(size=DIM)), _unit(rng.normal(size=DIM))
    _, new, _ = mono.attribute_chunk([], {"A": _print(old, 3)}, {"A": [new_emb, None]}, OPTS)
    assert new["A"].n_calls == 4 and new["A"].source == "stereo"
    np.testing.assert_allclose(new["A"].embedding, _unit(3 * old + new_emb), atol=1e-6)
    # A recurrence print gives way to the first stereo call: stereo is the better evidence.
    _, new, _ = mono.attribute_chunk(
        [], {"A": _print(old, 9, "recurrence")}, {"A": [new_emb]}, OPTS
    )
    assert (new["A"].n_calls, new["A"].source) == (1, "stereo")
    np.testing.assert_allclose(new["A"].embedding, new_emb, atol=1e-6)


def _two_calls_of_agent_a(agent: np.ndarray, rng: np.random.Generator) -> list:
    """Mono calls c1 and c2 of agent A: the agent is voice 0 in c1 and voice 1 in c2."""
    return [
        ("c1", "A", _voices("", [_near(agent, 0.93, rng), _near(agent, 0.5, rng)])),
        ("c2", "A", _voices("", [_near(agent, 0.5, rng), _near(agent, 0.93, rng)])),
    ]


def test_recurrence_print_from_one_chunk_decides_a_lone_call_of_the_next():
    rng = np.random.default_rng(7)
    agent = _unit(rng.normal(size=DIM))
    first = _two_calls_of_agent_a(agent, rng)
    _, new, choices = mono.attribute_chunk(first, {}, {}, OPTS)
    assert {k: c.agent_voice for k, c in choices.items()} == {"c1": 0, "c2": 1}
    assert (new["A"].source, new["A"].n_calls) == ("recurrence", 2)
    lone = _voices("", [_near(agent, 0.5, rng), _near(agent, 0.93, rng)])
    _, again, choices = mono.attribute_chunk([("c3", "A", lone)], new, {}, OPTS)
    assert (choices["c3"].agent_voice, choices["c3"].decided_by) == (1, "recurrence")
    assert again["A"].n_calls == 3


def test_calls_already_stored_are_attributed_but_do_not_feed_the_recurrence_print_again():
    rng = np.random.default_rng(7)
    agent = _unit(rng.normal(size=DIM))
    calls = _two_calls_of_agent_a(agent, rng)
    _, first, choices = mono.attribute_chunk(calls, {}, {}, OPTS)
    # a --force re-run of the same calls: the same decisions, the print left as it was
    _, again, rerun = mono.attribute_chunk(calls, first, {}, OPTS, stored={"c1", "c2"})
    assert again == {}
    assert {k: c.agent_voice for k, c in rerun.items()} == {"c1": 0, "c2": 1}
    assert {k: c.agent_voice for k, c in choices.items()} == {"c1": 0, "c2": 1}


def test_no_print_and_one_voice_falls_back_deterministically():
    rng = np.random.default_rng(8)
    one = _voices("", [rng.normal(size=DIM)])
    runs = [mono.attribute_chunk([("o", "B", one)], {}, {}, OPTS) for _ in range(2)]
    (segs, new, choices), (segs2, _, choices2) = runs
    assert segs == segs2 and choices == choices2 and new == {}
    assert choices["o"].decided_by == "single_voice"
    assert {s.speaker for s in segs["o"]} == {"agent"}
    row = mono.attribution_row("o", one, choices["o"], OPTS)
    assert (row.method, row.margin, row.print_calls) == ("single_voice", None, None)
    with pytest.raises(ValueError, match="twice"):
        mono.attribute_chunk([("o", "B", one), ("o", "B", one)], {}, {}, OPTS)


def _transcript(agent_text: str, customer_text: str) -> Transcript:
    utts = [
        Utterance("t", 0, "customer", 0.0, 2.0, customer_text),
        Utterance("t", 1, "agent", 2.5, 5.0, agent_text),
    ]
    cov = {"agent": Coverage(2.5, 2.5), "customer": Coverage(2.0, 1.0)}
    return Transcript(utts, cov)


def test_after_transcription_phrases_settle_a_weak_choice_and_swap_the_sides():
    rng = np.random.default_rng(9)
    call = _voices("t", [rng.normal(size=DIM), rng.normal(size=DIM)], speech=(40.0, 12.0))
    weak = spk.choose_agent_voices("A", [call], OPTS).choices["t"]
    assert (weak.agent_voice, weak.decided_by) == (0, "talk_share")
    # The side labelled customer holds the greeting: it is the agent.
    tr, ch = mono.settle_by_phrases(
        _transcript("我的订单还没到", "您好，这里是客服，有什么可以帮您"), call, weak, PHRASES, OPTS
    )
    assert (ch.agent_voice, ch.decided_by) == (1, "phrases")
    assert [u.speaker for u in tr.utterances] == ["agent", "customer"]
    assert tr.coverage["agent"] == Coverage(2.0, 1.0)
    # A choice the print made clearly stands, whatever the phrases.
    strong = replace(weak, decided_by="voice_print", margin=0.2, similarity=(0.9, 0.7))
    original = _transcript("我的订单还没到", "您好，这里是客服，有什么可以帮您")
    assert mono.settle_by_phrases(original, call, strong, PHRASES, OPTS) == (original, strong)


def test_voice_prints_and_attributions_round_trip_through_a_duckdb_file(tmp_path):
    rng = np.random.default_rng(10)
    a, b = _unit(rng.normal(size=DIM)), _unit(rng.normal(size=DIM))
    db = tmp_path / "voices.duckdb"
    con = store.connect(db)
    store.save_voice_prints(con, {"A": _print(a, 2), "B": replace(_print(b, 5), agent_id="B")})
    store.save_voice_prints(con, {"A": _print(b, 3)})  # replaces A, keeps B
    store.save_attributions(
        con,
        [
            mono.stereo_attribution("s1"),
            SpeakerAttribution("m1", "talk_share", None, 3.2, None),
            SpeakerAttribution("m2", "voice_print", 0.004, 6.0, 7),
        ],
    )
    store.save_attributions(con, [SpeakerAttribution("m1", "phrases", None, 3.2, None)])
    con.close()
    con = store.connect(db, read_only=True)
    try:
        prints = store.load_voice_prints(con)
        assert set(prints) == {"A", "B"} and set(store.load_voice_prints(con, ["B"])) == {"B"}
        assert (prints["A"].n_calls, prints["A"].source, prints["B"].n_calls) == (3, "stereo", 5)
        np.testing.assert_allclose(prints["A"].embedding, b, atol=1e-6)
        assert prints["A"].embedding.shape == (DIM,)
        rows = store.run_query(con, "SELECT * FROM speaker_attribution ORDER BY call_id")
        assert rows["method"].tolist() == ["phrases", "voice_print", "stereo"]
        weak = store.run_query(
            con,
            "SELECT call_id FROM speaker_attribution WHERE method IN "
            "('phrases', 'talk_share', 'single_voice') OR margin < 0.01 ORDER BY call_id",
        )
        assert weak["call_id"].tolist() == ["m1", "m2"]
    finally:
        con.close()


# ----------------------------------------------------------------------------- real audio

PAIR = ("A01-C-billing", "A01-C-refund")  # customers talk more than the agent in both
PRINT_FROM = "A01-E-refund"


def _eval_module():
    spec = importlib.util.spec_from_file_location("eval_mono", ROOT / "scripts" / "eval_mono.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["eval_mono"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The mono mixes of two of A01's calls, as recorded and customer-first, through
    split_mono (truth: the script's turn times), and A01's print from a third call's stereo
    agent channel (stereo_agent_embedding)."""
    require(
        importlib.util.find_spec("resemblyzer") is not None,
        "resemblyzer (speaker encoder weights) not installed",
    )
    ev = _eval_module()
    tools = ev.Tools(CONFIG)
    folder = tmp_path_factory.mktemp("mono")
    calls = {c.call_id: c for c in ev.load_samples(only=(*PAIR, PRINT_FROM))}
    cases = {
        variant: [
            ev.mono_case(
                calls[cid] if variant == "original" else ev.customer_first(calls[cid]),
                tools,
                folder,
                script_truth=True,
            )
            for cid in PAIR
        ]
        for variant in ("original", "customer first")
    }
    emb = ev.agent_embedding(calls[PRINT_FROM], tools)
    return ev, tools, cases, emb, calls


def _entries(cases):
    return [(c.call.call_id, c.call.agent_id, c.voices) for c in cases]


@pytest.mark.parametrize("variant", ["original", "customer first"])
def test_two_mono_calls_of_an_agent_are_attributed_right_without_any_print(real, variant):
    ev, _, cases, _, _ = real
    segs, new, choices = mono.attribute_chunk(_entries(cases[variant]), {}, {}, OPTS)
    assert new["A01"].source == "recurrence" and new["A01"].n_calls == 2
    for c in cases[variant]:
        cid = c.call.call_id
        s = ev.score(c.truth, segs[cid])
        assert choices[cid].decided_by == "recurrence"
        assert not s.swapped and s.accuracy >= 0.90, (cid, variant, s)


@pytest.mark.parametrize("variant", ["original", "customer first"])
def test_a_lone_mono_call_is_decided_by_the_print_stored_from_another_stereo_call(
    real, variant, tmp_path
):
    ev, _, cases, emb, _ = real
    assert emb is not None and emb.shape == (DIM,)
    _, built, _ = mono.attribute_chunk([], {}, {"A01": [emb]}, OPTS)
    con = store.connect(tmp_path / "prints.duckdb")
    store.save_voice_prints(con, built)
    prints = store.load_voice_prints(con, ["A01"])
    con.close()
    for c in cases[variant]:
        cid = c.call.call_id
        segs, new, choices = mono.attribute_chunk(_entries([c]), prints, {}, OPTS)
        s = ev.score(c.truth, segs[cid])
        assert choices[cid].decided_by == "voice_print" and new == {}
        assert choices[cid].margin > OPTS.print_margin
        assert not s.swapped and s.accuracy >= 0.90, (cid, variant, s)


def test_one_speaker_alone_without_a_print_is_attributed_the_same_every_time(real, tmp_path):
    """The agent channel alone, read as a mono call: no print, nothing to compare with."""
    ev, tools, _, _, calls = real
    call = calls[PAIR[0]]
    alone = ev.StereoCall(
        call.call_id, "Z9", call.sr, call.left, np.zeros_like(call.right), call.turns
    )
    case = ev.mono_case(alone, tools, tmp_path, script_truth=True)
    again = mono.split_mono(case.audio, case.spans, tools.encoder, OPTS)
    runs = [mono.attribute_chunk([("z", "Z9", v)], {}, {}, OPTS) for v in (case.voices, again)]
    assert runs[0][0] == runs[1][0] and runs[0][2] == runs[1][2]
    assert runs[0][2]["z"].decided_by in ("single_voice", "talk_share")
    speech = sum(b - a for a, b in case.spans)
    covered = sum(s.end_s - s.start_s for s in runs[0][0]["z"])
    assert covered == pytest.approx(speech, abs=0.05 * speech)  # all speech kept, none dropped


def test_find_segments_still_attributes_a_mono_call_on_its_own(real):
    from pipeline.vad import find_segments

    _, tools, cases, _, _ = real
    c = cases["original"][0]
    segs = find_segments(c.audio, CONFIG.vad, tools.vad_model, CONFIG.speakers, tools.encoder)
    assert {s.speaker for s in segs} == {"agent", "customer"}
    with pytest.raises(ValueError, match=r"\[speakers\]"):
        find_segments(c.audio, CONFIG.vad, tools.vad_model)


def test_customer_first_variant_opens_with_the_customer_and_keeps_all_speech(real):
    ev, _, cases, _, calls = real
    for case in cases["customer first"]:
        c, orig = case.call, calls[case.call.call_id]
        assert sorted(c.turns)[0][2] == "customer"
        assert sorted(orig.turns)[0][2] == "agent"
        talk = lambda call, who: sum(t[1] - t[0] for t in call.turns if t[2] == who)  # noqa: E731
        assert talk(c, "agent") == pytest.approx(talk(orig, "agent"), abs=1e-6)
        assert talk(c, "customer") == pytest.approx(talk(orig, "customer"), abs=1e-6)
        # The moved greeting sits where the turn times say: the left channel is loud there.
        g0, g1 = next((t[0], t[1]) for t in sorted(c.turns) if t[2] == "agent")
        seg = c.left[int(g0 * c.sr) : int(g1 * c.sr)]
        gap = c.left[int((g0 - 0.5) * c.sr) : int((g0 - 0.1) * c.sr)]
        assert np.sqrt(np.mean(seg**2)) > 10 * np.sqrt(np.mean(gap**2))
