"""Call pairing (Hungarian over content similarity, topic-constrained) and turn alignment."""

from pipeline.align import CallDoc, agent_turns, align_turns, pair_calls
from pipeline.config import default_config

CONFIG = default_config()
JARGON = CONFIG.lexicon.jargon

REFUND = "我想问一下退款什么时候到账，我的订单已经取消了。退款会原路退回到您的银行卡。"
DELIVERY = "我的快递三天了还没到，物流一直不更新。包裹在中转站，明天派件。"
BILLING = "这个月账单多扣了一笔钱，是什么费用。这是自动续费的会员费用。"


def test_pairs_follow_content_when_no_topic_is_given():
    early = [
        CallDoc("e1", None, REFUND),
        CallDoc("e2", None, DELIVERY),
        CallDoc("e3", None, BILLING),
    ]
    current = [
        CallDoc("c1", None, BILLING.replace("这个月", "上个月")),
        CallDoc("c2", None, REFUND.replace("取消", "退掉")),
        CallDoc("c3", None, DELIVERY.replace("三天", "五天")),
    ]
    pairs = {(p.early_call_id, p.current_call_id) for p in pair_calls(early, current, JARGON)}
    assert pairs == {("e1", "c2"), ("e2", "c3"), ("e3", "c1")}


def test_topic_forbids_cross_topic_pairs_even_when_text_is_similar():
    early = [CallDoc("e1", "refund", REFUND), CallDoc("e2", "billing", REFUND)]
    current = [CallDoc("c1", "billing", REFUND)]
    pairs = pair_calls(early, current, JARGON)
    assert [(p.early_call_id, p.current_call_id, p.topic) for p in pairs] == [
        ("e2", "c1", "billing")
    ]


def test_turns_align_in_order_to_the_same_customer_question():
    early = agent_turns(
        [
            (0, "agent", "您好，请问有什么可以帮您"),
            (1, "customer", "我的退款什么时候到账"),
            (2, "agent", "首先，退款会原路退回到您的银行卡，三个工作日到账"),
            (3, "customer", "什么意思，没听懂"),
            (4, "agent", "也就是说，钱会退回您付款的那张卡"),
            (5, "customer", "好的谢谢"),
            (6, "agent", "不客气，再见"),
        ]
    )
    current = agent_turns(
        [
            (0, "agent", "您好，有什么可以帮您"),
            (1, "customer", "退款怎么还没到账"),
            (2, "agent", "退款原路退回银行卡，三个工作日"),
            (3, "customer", "啊？什么意思"),
            (4, "agent", "不是跟你说了吗，钱退回你付款的卡"),
            (5, "customer", "好吧"),
            (6, "agent", "再见"),
        ]
    )
    pairs = [
        (a.early_utterance_id, a.current_utterance_id)
        for a in align_turns(early, current, CONFIG.alignment)
    ]
    assert pairs[:3] == [(0, 0), (2, 2), (4, 4)]
    assert all(x < y for (x, _), (y, _) in zip(pairs, pairs[1:], strict=False))  # monotone
