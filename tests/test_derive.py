"""Cohorts, baselines, agitation and drift on small frames with known answers."""

import numpy as np
import pandas as pd
import pytest

from pipeline import derive
from pipeline.config import default_config

CONFIG = default_config()


def _calls(rows):
    return pd.DataFrame(rows, columns=["call_id", "agent_id", "recorded_at", "agent_hired_at"])


def test_cohorts_by_hire_date():
    calls = _calls(
        [
            ("a1", "A", "2024-01-20", "2024-01-08"),
            ("a2", "A", "2024-04-07", "2024-01-08"),  # day 12, day 90
            ("a3", "A", "2024-06-01", "2024-01-08"),  # neither
            ("a4", "A", "2026-10-25", "2024-01-08"),
            ("a5", "A", "2026-11-20", "2024-01-08"),
            ("a6", "A", "2026-10-20", "2024-01-08"),  # 31 days before the latest call
        ]
    )
    out = derive.assign_cohorts(calls, CONFIG.cohorts).set_index("call_id")
    assert out.loc["a1", "tenure_days"] == 12 and out.loc["a2", "tenure_days"] == 90
    assert out["cohort"].fillna("-").to_dict() == {
        "a1": "early",
        "a2": "early",
        "a3": "-",
        "a6": "-",
        "a4": "current",
        "a5": "current",
    }


def test_cohorts_without_hire_date_take_earliest_and_latest_k():
    calls = _calls([(f"b{i}", "B", f"2025-0{i}-01", None) for i in range(1, 8)])
    out = derive.assign_cohorts(calls, CONFIG.cohorts).set_index("call_id")["cohort"]
    assert list(out[out == "early"].index) == ["b1", "b2", "b3"]
    assert list(out[out == "current"].index) == ["b5", "b6", "b7"]
    assert pd.isna(out["b4"])


def _utts(agent, cohort, pitch, high, rate, call="x", n=4, speaker="agent"):
    """Utterances whose voice sits at `pitch` Hz (median) and `high` st (90th percentile)."""
    return [
        {
            "agent_id": agent,
            "cohort": cohort,
            "call_id": call,
            "utterance_id": i,
            "speaker": speaker,
            "start_s": i * 2.0,
            "end_s": i * 2.0 + 1.5,
            "pitch_median_hz": pitch * (1 + 0.01 * i),
            "pitch_range_st": 4.0,
            "loudness_dbfs": -20.0,
            "speech_rate_cpm": rate,
            "f0_median_st": 12 * np.log2(pitch / 100) + 0.1 * i,
            "f0_high_st": high + 0.1 * i,
        }
        for i in range(n)
    ]


def _agitation(rows):
    utts = pd.DataFrame(rows)
    base = derive.agent_baselines(utts, CONFIG.baseline)
    agit = derive.agitation_baselines(utts, CONFIG.agitation)
    ua = utts.merge(derive.utterance_agitation(utts, base, agit), on=["call_id", "utterance_id"])
    return ua, derive.call_agitation(ua, CONFIG.agitation).set_index("call_id")["agitation"]


def test_agitation_is_relative_to_the_agents_own_early_baseline():
    # Agent L speaks low, agent H high; each one's current calls are 3 semitones higher than
    # their own early calls, so each drifted by the same amount.
    rows = (
        _utts("L", "early", 110, 5.0, 200, "l1")
        + _utts("L", "current", 110 * 2**0.25, 8.0, 260, "l2")
        + _utts("H", "early", 240, 18.0, 200, "h1")
        + _utts("H", "current", 240 * 2**0.25, 21.0, 260, "h2")
    )
    ua, calls = _agitation(rows)
    assert calls["l1"] == pytest.approx(0.0, abs=0.3) and calls["h1"] == pytest.approx(0.0, abs=0.3)
    assert calls["l2"] > 1.5 and calls["h2"] > 1.5
    assert calls["l2"] == pytest.approx(calls["h2"], abs=0.2)  # same drift, same score
    assert ua.loc[ua.call_id == "l2", "pitch_vs_baseline_st"].mean() == pytest.approx(3.0, abs=0.2)


def test_agitation_ignores_loudness_and_recording_gain():
    """A current call recorded 10 dB louder, same voice: loudness is not in the model, and the
    voice features are gain-free by construction (tests/test_prosody.py checks them on audio)."""
    early = _utts("A", "early", 150, 12.0, 220, "e")
    same = [
        {**r, "loudness_dbfs": r["loudness_dbfs"] + 10}
        for r in _utts("A", "current", 150, 12.0, 220, "c")
    ]
    _, calls = _agitation(early + same)
    assert abs(calls["c"] - calls["e"]) <= 0.3


def test_customer_agitation_is_the_rise_over_their_own_opening_turns():
    calm = _utts("A", "early", 200, 15.0, 220, "calm", n=6, speaker="customer")
    for i, r in enumerate(calm):  # a steady voice: small ups and downs, no trend
        r["f0_median_st"] = 12.0 + 0.1 * (i % 2)
        r["f0_high_st"] = 15.0 + 0.1 * (i % 2)
    rising = _utts("A", "early", 200, 15.0, 220, "rise", n=6, speaker="customer")
    for r in rising[3:]:
        r["f0_median_st"] += 3.0
        r["f0_high_st"] += 4.0
    out = derive.customer_agitation(pd.DataFrame(calm + rising), CONFIG.agitation)
    score = out.set_index("call_id")["customer_agitation"]
    assert score["rise"] > 2.0 and abs(score["calm"]) < 1.0


def test_drift_means_deltas_and_effect_size():
    m = pd.DataFrame(
        {
            "agent_id": ["A"] * 4,
            "cohort": ["early", "early", "current", "current"],
            "rate": [200.0, 210.0, 260.0, 270.0],
        }
    )
    d = derive.agent_drift(m, ["rate"]).iloc[0]
    assert (d.early_mean, d.current_mean, d.delta, d.n_early, d.n_current) == (
        205.0,
        265.0,
        60.0,
        2,
        2,
    )
    assert d.effect_size == pytest.approx(60 / np.sqrt(50))


def test_one_agents_derived_rows_recomputed_alone_equal_a_full_recompute(flow_run, tmp_path):
    """A night recomputes only the agents it touched (store.changed_agents): on the real run's
    database, A01's rows made stale and recomputed from A01's calls alone equal a recompute of
    every agent, and the other agents' rows are left exactly as they were."""
    import shutil

    from pipeline import review, store

    db = tmp_path / "copy.duckdb"
    shutil.copy(flow_run[2], db)
    config = default_config()
    con = store.connect(db)
    try:
        full = review.derive_tables(store.load_history(con), config)
        store.replace_derived(con, full)
        before = {t: _rows(con, t) for t in store.DERIVED_TABLES}
        con.execute("UPDATE agent_drift SET delta = 99 WHERE agent_id = 'A01'")
        con.execute("DELETE FROM aligned_utterances WHERE agent_id = 'A01'")
        con.execute(
            "UPDATE call_derived SET agitation = 99 WHERE call_id IN "
            "(SELECT call_id FROM call_log WHERE agent_id = 'A01')"
        )
        part = review.derive_tables(store.load_history(con, ["A01"]), config)
        assert set(part["call_pairs"]["agent_id"]) == {"A01"}
        store.replace_derived(con, part, ["A01"])
        after = {t: _rows(con, t) for t in store.DERIVED_TABLES}
    finally:
        con.close()
    for table in store.DERIVED_TABLES:
        pd.testing.assert_frame_equal(after[table], before[table], rtol=1e-9, obj=table)


def test_a_night_in_batches_of_one_agent_keeps_text_work_and_equals_one_recompute(
    flow_run, tmp_path
):
    """The run's derive (review.update_derived) one agent per batch ([run] derive_batch_calls =
    1), first over every agent and then as a night after a finished run, which keeps every
    call's stored detection and pairing words: each stores the same rows as one derive of the
    whole history, and the night's pairing reads the stored words."""
    import shutil
    from dataclasses import replace
    from datetime import datetime

    from pipeline import review, store

    db = tmp_path / "copy.duckdb"
    shutil.copy(flow_run[2], db)
    config = default_config()
    one_by_one = replace(config, run=replace(config.run, derive_batch_calls=1))
    con = store.connect(db)
    try:
        agents = [r[0] for r in con.execute("SELECT DISTINCT agent_id FROM call_log").fetchall()]
        assert len(store.agent_batches(con, None, 1)) == len(agents) > 1
        store.replace_derived(con, review.derive_tables(store.load_history(con), config))
        expected = {t: _rows(con, t) for t in store.DERIVED_TABLES}
        assert len(expected["call_words"]) and len(expected["call_pairs"])
        con.execute("DELETE FROM call_pairs")  # stale rows a full recompute must not leave
        review.update_derived(con, None, one_by_one, None)
        full = {t: _rows(con, t) for t in store.DERIVED_TABLES}
        # stored words not the jieba cut's: a night that kept them pairs on them
        con.execute("UPDATE call_words SET words = '同 一 个 词'")
        night = store.load_history(
            con, agents, review.history_columns(config), unchanged_since=datetime.now(),
            kept_columns=review.KEPT_COLUMNS,
        )  # fmt: skip
        assert set(night.kept_words["call_id"]) == set(expected["call_words"]["call_id"])
        review.update_derived(con, agents, one_by_one, datetime.now())
        after = {t: _rows(con, t) for t in store.DERIVED_TABLES}
    finally:
        con.close()
    for table in store.DERIVED_TABLES:
        pd.testing.assert_frame_equal(full[table], expected[table], rtol=1e-9, obj=table)
    assert set(after["call_pairs"]["similarity"]) == {1.0}  # every kept call has the same words
    for table in set(store.DERIVED_TABLES) - {"call_pairs", "aligned_utterances", "call_words"}:
        pd.testing.assert_frame_equal(after[table], expected[table], rtol=1e-9, obj=table)


def _rows(con, table: str) -> pd.DataFrame:  # noqa: ANN001
    frame = con.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
    return frame.reset_index(drop=True)


def test_text_work_done_where_a_call_is_measured_equals_the_derives(flow_run):
    """review.text_work, which a run does per call where the call is measured and stores with
    it, gives what the derive stage computes from the stored text: the same behaviour figures
    and hits, and the cohort calls' pairing words."""
    from dataclasses import asdict

    from pipeline import review, store
    from pipeline.records import Utterance

    config = default_config()
    con = store.connect(flow_run[2], read_only=True)
    try:
        history = store.load_history(con, None, review.history_columns(config))
    finally:
        con.close()
    derived = review.derive_tables(history, config)
    figures = derived["call_behaviours"].set_index("call_id")
    hits = derived["utterance_behaviours"]
    stored_words = derived["call_words"].set_index("call_id")["words"].to_dict()
    assert stored_words and len(hits)
    for call_id, g in history.utterances.groupby("call_id"):
        utts = [
            Utterance(r.call_id, int(r.utterance_id), r.speaker, r.start_s, r.end_s, r.text)
            for r in g.itertuples()
        ]
        work = review.text_work(utts, config)
        expected = figures.loc[call_id, list(asdict(work.behaviours))].to_dict()
        got = asdict(work.behaviours)
        for name, value in got.items():
            assert (pd.isna(expected[name]) and value is None) or expected[name] == pytest.approx(
                value, rel=1e-9
            ), (call_id, name)
        mine = hits[hits["call_id"] == call_id].drop(columns="call_id")
        assert sorted(map(tuple, mine.itertuples(index=False))) == sorted(
            (h.utterance_id, h.behaviour, h.kind, h.words) for h in work.hits
        )
        if call_id in stored_words:
            assert work.words == stored_words[call_id]


def test_a_night_keeps_the_alignment_of_steady_agents_and_redoes_the_rest(flow_run, tmp_path):
    """Aligning turns is most of a night's derive once reciting is cheap. An agent whose baselines
    come out as stored keeps the stored aligned rows of pairs whose two calls are unchanged since
    the last finished run; an agent whose baseline moved, or a pair with a call processed again
    since, is aligned again, and then equals a recompute of the whole history."""
    import shutil
    from datetime import datetime, timedelta

    from pipeline import review, store

    db = tmp_path / "copy.duckdb"
    shutil.copy(flow_run[2], db)
    config = default_config()
    con = store.connect(db)
    try:
        store.replace_derived(con, review.derive_tables(store.load_history(con), config))
        pairs = con.execute(
            "SELECT DISTINCT agent_id, pair_id, current_call_id FROM aligned_utterances ORDER BY 1, 2"
        ).fetchall()
        agents = sorted({a for a, _, _ in pairs})
        assert len(agents) >= 3, pairs
        moved, redone, steady = agents[:3]
        redone_pair, redone_call = next((p, c) for a, p, c in pairs if a == redone)
        # marks a recompute would not write: kept rows keep them
        con.execute("UPDATE aligned_utterances SET current_text = 'kept'")
        since = datetime.now()
        con.execute("UPDATE call_log SET processed_at = ?", [since - timedelta(days=1)])
        # `moved`: an early utterance louder, so its baselines move; `redone`: one current call
        # stored again after the last finished run
        con.execute(
            "UPDATE utterance_log SET loudness_dbfs = loudness_dbfs + 6 WHERE call_id IN "
            "(SELECT call_id FROM call_derived JOIN call_log USING (call_id) "
            "WHERE agent_id = ? AND cohort = 'early') AND speaker = 'agent'",
            [moved],
        )
        con.execute(
            "UPDATE call_log SET processed_at = ? WHERE call_id = ?",
            [since + timedelta(hours=1), redone_call],
        )
        review.update_derived(con, agents, config, since)
        after = _rows(con, "aligned_utterances")
        full = review.derive_tables(store.load_history(con), config)["aligned_utterances"]
    finally:
        con.close()
    kept = after["current_text"] == "kept"
    assert kept[after["agent_id"] == steady].all()
    assert not kept[after["agent_id"] == moved].any()
    assert not kept[after["pair_id"] == redone_pair].any()
    assert kept[(after["agent_id"] == redone) & (after["pair_id"] != redone_pair)].all()
    # what was aligned again equals a whole recompute, and nothing else changed but the marks
    full = full.sort_values(["pair_id", "early_utterance_id"]).reset_index(drop=True)
    after = after.sort_values(["pair_id", "early_utterance_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        after.drop(columns="current_text"), full[after.columns].drop(columns="current_text"),
        rtol=1e-9, check_dtype=False,
    )  # fmt: skip
    assert (after.loc[~kept, "current_text"] == full.loc[~kept, "current_text"]).all()
