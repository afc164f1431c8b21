"""QA rule flags from the editable rules file, on crafted call figures."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.config import Rule, default_config
from pipeline.review import DRIFT_METRICS
from pipeline.rules import check_rules, flag_calls


def test_shipped_rules_name_real_metrics():
    rules = default_config().lexicon.rules
    assert {r.label for r in rules} >= {"语速过快", "静音过长", "抢话", "服务禁用语"}
    check_rules(rules, set(DRIFT_METRICS))


def test_flags_compare_each_call_with_each_threshold():
    metrics = pd.DataFrame(
        {
            "call_id": ["a", "b", "c"],
            "agent_speech_rate_cpm": [300.0, 250.0, None],
            "agent_interruptions": [2, 0, 5],
        }
    )
    rules = (
        Rule(name="fast", label="语速过快", metric="agent_speech_rate_cpm", op=">", threshold=280),
        Rule(name="cut_in", label="抢话", metric="agent_interruptions", op=">=", threshold=2),
    )
    hits = {(f.call_id, f.rule): f.hit for f in flag_calls(metrics, rules)}
    assert hits == {
        ("a", "fast"): True,
        ("b", "fast"): False,
        ("c", "fast"): None,
        ("a", "cut_in"): True,
        ("b", "cut_in"): False,
        ("c", "cut_in"): True,
    }


@pytest.mark.parametrize(
    "rule, message",
    [
        (Rule(name="x", label="x", metric="no_such_metric", op=">", threshold=1), "unknown metric"),
        (
            Rule(name="x", label="x", metric="agent_interruptions", op="!=", threshold=1),
            "op must be",
        ),
    ],
)
def test_a_rule_the_data_cannot_answer_is_refused(rule, message):
    with pytest.raises(ValueError, match=message):
        check_rules((rule,), set(DRIFT_METRICS))
