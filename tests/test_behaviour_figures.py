"""Per-call behaviour figures and the reciting measure, on crafted calls (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.behaviours.figures import Spoken, call_behaviours, detect_call
from pipeline.behaviours.recite import (
    ReciteOptions,
    agent_recitals,
    covered_chars,
    knowledge_base,
    read_exempt,
    segments,
)
from pipeline.behaviours.spec import load_behaviours

ROOT = Path(__file__).resolve().parents[1]
EXEMPT = read_exempt(ROOT / "pipeline" / "data" / "recite_exempt.txt")
OPTIONS = ReciteOptions()

# The refund policy as the knowledge base words it, read aloud...
SCRIPT = (
    "根据公司规定，退款申请提交后会在七个工作日内原路退回到您的支付账户，"
    "如果超过七个工作日仍未到账，请您联系发卡银行查询入账情况。"
)
# ... and the same policy, explained by an agent in their own words, differently each time.
OWN_WORDS = [
    "这个钱一般一个星期左右就能回到您付款的那张卡上，要是过了一个礼拜还没看到，您问问银行那边。",
    "退款是原路返回的，您当时用哪张卡付的就退到哪张卡，大概要等七天，等不到的话找银行查一下。",
    "您别担心，退的钱会回到原来的账户，通常五到七天，银行入账慢的话可以打银行电话确认。",
]
GREETING = "您好，很高兴为您服务，请问有什么可以帮您？"


@pytest.fixture(scope="module")
def spec():
    return load_behaviours(ROOT / "pipeline" / "data" / "behaviours.toml")


def _call(*turns: tuple[str, str]) -> list[Spoken]:
    return [Spoken(i, who, text, 6.0) for i, (who, text) in enumerate(turns)]


def test_a_call_s_figures_count_kinds_and_shares(spec):
    call = _call(
        ("agent", GREETING),
        ("customer", "我都打了三次电话了，还没人给我解决！"),
        ("agent", "我非常理解您的心情，这个我来帮您处理，明天上午给您回电。"),
        ("customer", "能不能今天就退款？"),
        ("agent", "不可能，退款都要七个工作日。"),
        ("customer", "你刚才说的是三个工作日。"),
        ("agent", "我没说错，是您听错了。这是常识。"),
    )
    hits = detect_call(spec, call)
    assert {(h.utterance_id, h.kind) for h in hits} == {
        (2, "empathy"),
        (2, "owns"),
        (4, "negative_refusal"),
        (6, "argues"),
        (6, "talking_down"),
    }
    fig = call_behaviours(spec, call, hits)
    assert (fig.customer_complaint_turns, fig.agent_empathy_count, fig.agent_empathy_rate) == (
        1,
        1,
        1.0,
    )
    assert (fig.agent_owns_count, fig.agent_passes_back_count, fig.agent_ownership_share) == (
        1,
        0,
        1.0,
    )
    assert (
        fig.agent_positive_no_count,
        fig.agent_negative_refusal_count,
        fig.agent_positive_no_share,
    ) == (0, 1, 0)
    assert (fig.customer_correction_turns, fig.agent_admits_count, fig.agent_argues_count) == (
        1,
        0,
        1,
    )
    assert fig.agent_admits_share == 0.0
    # one talking-down utterance in 4 agent utterances of 6 s: 1 per 0.4 min
    assert fig.agent_talking_down_count == 1 and fig.agent_talking_down_per_min == pytest.approx(
        2.5
    )


def test_a_call_without_occasions_has_no_shares(spec):
    call = _call(("agent", GREETING), ("customer", "我查一下话费。"), ("agent", "好的，请稍等。"))
    fig = call_behaviours(spec, call, detect_call(spec, call))
    assert fig.agent_empathy_rate is None and fig.agent_ownership_share is None
    assert fig.agent_positive_no_share is None and fig.agent_admits_share is None
    assert fig.agent_talking_down_per_min == 0.0


def test_the_same_paragraph_read_in_three_calls_scores_high():
    calls = {
        "c1": [GREETING, "好的，我帮您查一下。", SCRIPT],
        "c2": [GREETING, "您的订单已经取消了。" + SCRIPT],
        # an ASR substitution (到账 -> 道账) costs only the n-grams across it
        "c3": [GREETING, SCRIPT.replace("仍未到账", "仍未道账"), "还有别的问题吗？"],
    }
    got = agent_recitals(calls, frozenset(), EXEMPT, OPTIONS)
    assert all(
        r.agent_recited_share is not None and r.agent_recited_share > 0.8 for r in got.values()
    ), got


def test_the_same_policy_in_own_words_scores_low():
    calls = {f"c{i}": [GREETING, text] for i, text in enumerate(OWN_WORDS)}
    got = agent_recitals(calls, frozenset(), EXEMPT, OPTIONS)
    assert all(
        r.agent_recited_share is not None and r.agent_recited_share < 0.1 for r in got.values()
    ), got


def test_reading_the_knowledge_base_scores_high_in_a_single_call(tmp_path):
    (tmp_path / "refunds.md").write_text("# 退款\n" + SCRIPT + "\n", encoding="utf-8")
    kb = knowledge_base(tmp_path, EXEMPT, OPTIONS.n)
    read = agent_recitals({"c1": [SCRIPT]}, kb, EXEMPT, OPTIONS)["c1"]
    own = agent_recitals({"c1": [OWN_WORDS[0]]}, kb, EXEMPT, OPTIONS)["c1"]
    assert read.agent_recited_share == 1.0 and own.agent_recited_share == 0.0
    assert knowledge_base(None, EXEMPT, OPTIONS.n) == frozenset()


def test_fixed_wording_on_the_exemption_list_is_not_reciting():
    closing = "感谢您的来电，祝您生活愉快，再见。"
    calls = {f"c{i}": [GREETING + text + closing] for i, text in enumerate(OWN_WORDS)}
    assert all(
        r.agent_recited_share == 0.0
        for r in agent_recitals(calls, frozenset(), EXEMPT, OPTIONS).values()
    )
    # without the list, the greeting and closing repeated in every call count as recited
    bare = agent_recitals(calls, frozenset(), (), OPTIONS)
    assert all(r.agent_recited_share and r.agent_recited_share > 0.1 for r in bare.values())
    assert segments("您好，很高兴为您服务，七天内", EXEMPT) == ["7天内"]


def test_short_replies_are_not_explanations():
    calls = {f"c{i}": ["好的，稍等，我看一下。"] for i in range(3)}
    assert all(
        r.agent_recited_share is None
        for r in agent_recitals(calls, frozenset(), (), OPTIONS).values()
    )


def test_a_complaint_answered_over_several_utterances_is_one_occasion(spec):
    call = _call(
        ("customer", "快递晚了一个星期了，太过分了！"),
        ("agent", "好的。"),
        ("agent", "换作是我也会着急的，实在抱歉。"),
        ("customer", "我的宽带也坏了。"),
        ("agent", "请问您的宽带账号是多少？"),
    )
    fig = call_behaviours(spec, call, detect_call(spec, call))
    assert (fig.customer_complaint_turns, fig.agent_empathy_count) == (2, 1)
    assert fig.agent_empathy_rate == 0.5


def _plain_recitals(
    calls: dict[str, list[str]], kb: frozenset[str], n: int
) -> dict[str, tuple[int, int]]:
    """The definition, one set of n-grams per call and one flag per character."""
    own = {
        c: {r[i : i + n] for r in runs for i in range(len(r) - n + 1)} for c, runs in calls.items()
    }
    out = {}
    for c, runs in calls.items():
        found = {g for g in own[c] if g in kb or sum(g in o for o in own.values()) >= 2}
        recited = 0
        for r in runs:
            flags = [False] * len(r)
            for i in range(len(r) - n + 1):
                if r[i : i + n] in found:
                    flags[i : i + n] = [True] * n
            recited += sum(flags)
        out[c] = (sum(len(r) for r in runs), recited)
    return out


@given(
    st.lists(st.lists(st.text(alphabet="甲乙丙丁", max_size=12), max_size=4), max_size=5),
    st.integers(1, 5),
    st.lists(st.text(alphabet="甲乙丙", min_size=1, max_size=5), max_size=3),
)
def test_covered_characters_are_those_inside_a_found_gram(calls, n, kb_grams):
    """Each character inside at least one n-gram found in another call or the knowledge base
    counts once, however the found grams overlap or abut, and no n-gram spans two runs."""
    kb = frozenset(g for g in kb_grams if len(g) == n)
    chars, recited = covered_chars(calls, kb, n)
    plain = _plain_recitals({str(i): runs for i, runs in enumerate(calls)}, kb, n)
    assert list(zip(chars.tolist(), recited.tolist(), strict=True)) == list(plain.values())
