"""Service behaviours through the derive stage on a crafted DuckDB file: stored text only (no
audio, no Whisper), as a call stored before the figures existed is seen on the next run."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pytest

from pipeline.behaviours.tables import KEPT_COLUMNS
from pipeline.config import default_config
from pipeline.review import derive_tables, history_columns
from pipeline.store import load_history, replace_derived, schema_sql
from pipeline.store.db import write_frame
from pipeline.store.reads import flagged_utterances

HIRED = datetime(2025, 1, 1)
EARLY = [  # the agent's first weeks: owns the problem, admits a mistake, says no positively
    ("customer", "我的退款到现在都没到账，太过分了！"),
    ("agent", "非常理解您的心情，这个我来帮您处理，明天上午给您回电。"),
    ("customer", "你刚才说的是三个工作日，不是七个。"),
    ("agent", "是我说错了，抱歉，确实是三个工作日。"),
    ("customer", "能不能今天就给我退？"),
    ("agent", "今天到账比较难，我可以帮您申请加急，最晚明天给您答复。"),
]
CURRENT = [  # a year on: passes it back, argues, refuses flatly, talks down
    ("customer", "我的退款到现在都没到账，太过分了！"),
    ("agent", "这个不归我们管，您去问银行吧。"),
    ("customer", "你刚才说的是三个工作日，不是七个。"),
    ("agent", "我没说错，是您听错了，这是常识。"),
    ("customer", "能不能今天就给我退？"),
    ("agent", "不可能，规定就是这样。"),
]


def _store(con: duckdb.DuckDBPyConnection) -> None:
    calls, utts = [], []
    for i, (days, script) in enumerate([(3, EARLY), (5, EARLY), (400, CURRENT), (402, CURRENT)]):
        call_id = f"c{i}"
        calls.append(
            {
                "call_id": call_id,
                "agent_id": "A01",
                "recorded_at": HIRED + timedelta(days=days),
                "agent_hired_at": HIRED,
                "topic": "refund",
                "status": "ok",
            }
        )
        for j, (speaker, text) in enumerate(script):
            utts.append(
                {
                    "call_id": call_id,
                    "utterance_id": j,
                    "speaker": speaker,
                    "start_s": 5.0 * j,
                    "end_s": 5.0 * j + 4.0,
                    "text": text,
                }
            )
    write_frame(con, "call_log", pd.DataFrame(calls))
    write_frame(con, "utterance_log", pd.DataFrame(utts))
    write_frame(con, "call_figures", pd.DataFrame({"call_id": [c["call_id"] for c in calls]}))


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    con = duckdb.connect(str(tmp_path_factory.mktemp("behaviours") / "crafted.duckdb"))
    con.execute(schema_sql())
    _store(con)
    replace_derived(con, derive_tables(load_history(con), default_config()))
    yield con
    con.close()


def test_stored_calls_get_the_figures_from_their_text(con):
    got = con.execute(
        "SELECT call_id, agent_empathy_rate, agent_ownership_share, agent_positive_no_share, "
        "agent_admits_share, agent_talking_down_count FROM call_metrics ORDER BY call_id"
    ).fetchall()
    assert got == [
        ("c0", 1.0, 1.0, 1.0, 1.0, 0),
        ("c1", 1.0, 1.0, 1.0, 1.0, 0),
        ("c2", 0.0, 0.0, 0.0, 0.0, 1),
        ("c3", 0.0, 0.0, 0.0, 0.0, 1),
    ]


def test_reciting_is_high_when_the_same_words_recur(con):
    shares = dict(con.execute("SELECT call_id, agent_recited_share FROM call_metrics").fetchall())
    # the early calls repeat each other word for word; the current ones have no explanation
    # (every agent utterance is under 20 characters), so no figure rather than 0
    assert shares == {"c0": 1.0, "c1": 1.0, "c2": None, "c3": None}


def test_drift_table_shows_the_behaviours_getting_worse(con):
    drift = dict(
        con.execute(
            "SELECT metric, delta FROM agent_drift WHERE agent_id = 'A01' AND metric IN "
            "('agent_ownership_share', 'agent_admits_share', 'agent_talking_down_count', "
            "'agent_argues_count')"
        ).fetchall()
    )
    assert drift == {
        "agent_ownership_share": -1.0,
        "agent_admits_share": -1.0,
        "agent_talking_down_count": 1.0,
        "agent_argues_count": 1.0,
    }


def test_veto_flags_fire_with_the_turns_as_evidence(con):
    flags = con.execute(
        "SELECT call_id, rule, hit FROM call_flags "
        "WHERE rule IN ('talking_down', 'argues_after_correction') ORDER BY call_id, rule"
    ).fetchall()
    assert [(c, r) for c, r, hit in flags if hit] == [
        ("c2", "argues_after_correction"),
        ("c2", "talking_down"),
        ("c3", "argues_after_correction"),
        ("c3", "talking_down"),
    ]
    evidence = con.execute(
        "SELECT call_id, utterance_id, kind, words FROM utterance_behaviours "
        "WHERE call_id = 'c2' AND kind IN ('argues', 'talking_down') ORDER BY kind"
    ).fetchall()
    assert evidence == [("c2", 3, "argues", "我没说错"), ("c2", 3, "talking_down", "这是常识")]
    listed = flagged_utterances(con, "A01", agitation_high=99.0)
    assert list(listed["text"]) == [CURRENT[3][1], CURRENT[3][1]]  # one per current call
    assert set(listed["behaviours"]) == {"argues: 我没说错; talking_down: 这是常识"}


def test_the_report_lists_why_with_the_words_that_fired(con):
    from pipeline.report.views import flagged

    rows = flagged(flagged_utterances(con, "A01", agitation_high=99.0), agitation_high=99.0)
    assert rows[0].reasons == ("知错不改 argues «我没说错»", "服务姿态过高 talking down «这是常识»")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)


def test_a_night_keeps_the_detection_of_unchanged_calls_and_equals_a_full_recompute(tmp_path):
    """Detection reads a call's own text, so a night takes it as stored for the calls stored
    before the last finished run and not masked again since, and detects only the others; the
    tables equal a recompute of every call. Here one call is stored again after that run and one
    is masked again, both with other words: both are detected again."""
    con = duckdb.connect(str(tmp_path / "night.duckdb"))
    con.execute(schema_sql())
    _store(con)
    config = default_config()
    con.execute("UPDATE call_log SET processed_at = ?", [HIRED])
    replace_derived(con, derive_tables(load_history(con), config))
    finished = HIRED + timedelta(days=1)  # the last finished run
    con.execute(
        "UPDATE utterance_log SET text = '好的，我来帮您处理，明天给您回电。' "
        "WHERE call_id IN ('c2', 'c3') AND speaker = 'agent'"
    )
    con.execute(
        "UPDATE call_log SET processed_at = ? WHERE call_id = 'c2'", [finished + timedelta(hours=1)]
    )
    history = load_history(
        con,
        ["A01"],
        history_columns(config),
        unchanged_since=finished,
        changed=["c3"],
        kept_columns=KEPT_COLUMNS,
    )
    assert sorted(history.kept_behaviours["call_id"]) == ["c0", "c1"]
    night = derive_tables(history, config)
    full = derive_tables(load_history(con), config)
    con.close()
    assert (
        night["call_behaviours"].loc[lambda f: f["call_id"] == "c3", "agent_owns_count"].item() == 3
    )
    for table in ("call_behaviours", "utterance_behaviours"):
        pd.testing.assert_frame_equal(
            _sorted(night[table]), _sorted(full[table]), check_dtype=False, obj=table
        )


def test_a_full_recompute_in_batches_still_flags_calls_without_an_agent(tmp_path):
    """The batched derive (review.update_derived) over every agent also derives the calls stored
    without an agent_id: their rule flags, as one derive of the whole history gives them."""
    from pipeline.review import update_derived

    con = duckdb.connect(str(tmp_path / "no_agent.duckdb"))
    con.execute(schema_sql())
    _store(con)
    con.execute("UPDATE call_log SET agent_id = NULL WHERE call_id = 'c1'")
    config = default_config()
    whole = derive_tables(load_history(con), config)["call_flags"]
    update_derived(con, None, config, None)
    stored = con.execute("SELECT call_id, rule FROM call_flags ORDER BY ALL").fetchall()
    con.close()
    assert "c1" in set(whole["call_id"])
    assert stored == sorted(zip(whole["call_id"], whole["rule"], strict=True))
