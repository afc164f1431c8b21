"""The service behaviours on the real run over the sample calls (the session's `flow_run`: no
Whisper run of its own). The sample scripts' current calls have the agents say 我已经说得很明白了,
hand the problem back (你去问银行, 这不是我们的问题) and drop the early calls' apologies, so the
drift table must show talking down and passing back up and empathy down for every agent; where
the scripts put them (sample_audio/README.md), an alternative turned into a flat refusal and
an admitted mistake into an argument."""

from __future__ import annotations


def test_the_drift_table_shows_the_scripted_behaviours_drifting(db_con):
    drift = {
        (agent, metric): delta
        for agent, metric, delta in db_con.execute(
            "SELECT agent_id, metric, delta FROM agent_drift WHERE metric IN "
            "('agent_talking_down_count', 'agent_empathy_rate', 'agent_empathy_count', "
            "'agent_passes_back_count')"
        ).fetchall()
    }
    agents = {agent for agent, _ in drift}
    assert agents == {"A01", "A02", "A03"}
    for agent in agents:
        assert drift[agent, "agent_talking_down_count"] > 0, agent
        assert drift[agent, "agent_empathy_rate"] < 0, agent
        assert drift[agent, "agent_empathy_count"] < 0, agent
        assert drift[agent, "agent_passes_back_count"] > 0, agent


# (metric, which way it drifts, the agents whose scripts have it in both cohorts)
SCRIPTED = [
    ("agent_positive_no_count", -1, ("A01", "A02")),
    ("agent_negative_refusal_count", 1, ("A01", "A02")),
    ("agent_admits_count", -1, ("A02", "A03")),
    ("agent_argues_count", 1, ("A02", "A03")),
]


def test_saying_no_and_owning_mistakes_drift_where_the_scripts_put_them(db_con):
    for metric, sign, agents in SCRIPTED:
        for agent in agents:
            (delta,) = db_con.execute(
                "SELECT delta FROM agent_drift WHERE agent_id = ? AND metric = ?", [agent, metric]
            ).fetchone()
            assert delta * sign > 0, (agent, metric, delta)
    argued = db_con.execute(
        "SELECT call_id FROM call_flags WHERE rule = 'argues_after_correction' AND hit "
        "ORDER BY call_id"
    ).fetchall()
    assert [c for (c,) in argued] == ["A02-C-refund", "A03-C-billing"]


def test_every_sample_call_has_behaviour_figures_and_the_flags_point_at_turns(db_con):
    missing = db_con.execute(
        "SELECT count(*) FROM call_metrics WHERE agent_explanation_chars IS NULL"
    ).fetchone()[0]
    assert missing == 0
    flagged = db_con.execute(
        "SELECT f.call_id, count(b.utterance_id) FROM call_flags f "
        "LEFT JOIN utterance_behaviours b ON b.call_id = f.call_id AND b.kind = 'talking_down' "
        "WHERE f.rule = 'talking_down' AND f.hit GROUP BY 1"
    ).fetchall()
    assert flagged and all(n >= 1 and "-C-" in call for call, n in flagged)
