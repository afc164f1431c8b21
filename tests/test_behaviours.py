"""Service-behaviour patterns: loading refuses bad files with the line, matching tolerates one
substituted character, detection reads the customer turn before, and the labelled held-out
snippets keep the figures quoted in docs/METRICS.md. Pure functions: well under a second."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipeline.behaviours.detect import detect_turn, turns
from pipeline.behaviours.evaluate import add_noise, noisy, read_snippets, score
from pipeline.behaviours.match import find
from pipeline.behaviours.spec import BehaviourSpecError, Matcher, load_behaviours

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "pipeline" / "data" / "behaviours.toml"
SNIPPETS = ROOT / "tests" / "data" / "behaviours"

MINIMAL = """\
[settings]
fuzzy_min_chars = 4

[context.complaint]
phrases = ["太慢了"]

[behaviour.empathy]
kinds = ["empathy"]

[[pattern]]
behaviour = "empathy"
kind = "empathy"
after = "complaint"
phrases = ["理解您的心情"]
"""


@pytest.fixture(scope="module")
def spec():
    return load_behaviours(SHIPPED)


def _load(tmp_path: Path, text: str):
    path = tmp_path / "b.toml"
    path.write_text(text, encoding="utf-8")
    return load_behaviours(path)


def test_shipped_patterns_load(spec):
    assert [b.name for b in spec.behaviours] == [
        "empathy",
        "ownership",
        "saying_no",
        "owning_mistakes",
        "talking_down",
    ]
    assert {c.name for c in spec.contexts} == {"complaint", "correction", "request"}


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (
            ('phrases = ["理解您的心情"]', "phrases = [\"x\"]\nregex = ['(未闭合']"),
            15,
            "bad regular",
        ),
        (('after = "complaint"', 'after = "complaint"\nwhen = 1'), 14, "unknown key 'when'"),
        (('after = "complaint"', 'after = "anger"'), 13, "unknown context 'anger'"),
        (('kind = "empathy"\nafter', 'kind = "warmth"\nafter'), 12, "unknown kind 'warmth'"),
        (("[context.complaint]", "[context.shouting]"), 4, "unknown context 'shouting'"),
        (("[settings]", "[setting]"), 1, "unknown section [setting]"),
        (('behaviour = "empathy"', 'behaviour = "empathyy"'), 11, "unknown behaviour"),
    ],
)
def test_a_wrong_pattern_is_refused_with_file_and_line(tmp_path, edit, line, words):
    with pytest.raises(BehaviourSpecError) as err:
        _load(tmp_path, MINIMAL.replace(*edit))
    assert str(err.value).startswith(f"{tmp_path / 'b.toml'}:{line}:")
    assert words in str(err.value)


def test_the_minimal_file_loads_and_applies(tmp_path):
    spec = _load(tmp_path, MINIMAL)
    assert detect_turn(spec, "太慢了", "我理解您的心情")[0].kind == "empathy"
    assert detect_turn(spec, "我查一下", "我理解您的心情") == ()  # not after a complaint


def test_one_substituted_character_only_in_long_phrases():
    long, short = Matcher(phrases=("理解您的心情",)), Matcher(phrases=("没办法",))
    assert find("我里解您的心情", long, 4) == [(1, 7)]  # 理 -> 里 (ASR homophone)
    assert find("我里解您地心情", long, 4) == []  # two substitutions
    assert find("没半法", short, 4) == []  # three characters: exact only
    assert find("我里解您的心情", Matcher(phrases=("理解您的心情",), fuzzy=False), 4) == []


def test_ni_and_nin_are_one_character_to_the_matcher():
    """Whisper writes 你 for 您 (and an impatient agent drops 您): neither is a substitution,
    in phrases, exemptions or expressions, and the spans still index the stored text."""
    m = Matcher(phrases=("您去问",), exempt=("不用您去问",))
    assert find("我不知道，你去问银行。", m, 4) == [(5, 8)]
    assert find("不用你去问，我来查", m, 4) == []
    spec = load_behaviours(SHIPPED)
    hits = detect_turn(spec, "", "我不知道，你去问银行，这不是我们的问题。")
    assert [(h.kind, h.words) for h in hits] == [("passes_back", "你去问")]


def test_an_exemption_cancels_the_hits_it_overlaps():
    m = Matcher(phrases=("不可能",), exempt=("不可能影响",))
    assert find("不可能影响您的征信", m, 4) == []
    assert find("不可能，退款要七天", m, 4) == [(0, 3)]


def test_context_decides_what_the_same_words_mean(spec):
    complaint = "我都打了三次电话了，到现在还没人给我解决！"
    assert [h.kind for h in detect_turn(spec, complaint, "我理解您的心情，我马上帮您查。")] == [
        "empathy"
    ]
    assert detect_turn(spec, "我想改地址。", "我理解您的意思是要改地址，对吗？") == ()
    correction = "你刚才说不收手续费的。"
    admits = detect_turn(spec, correction, "抱歉刚才没说清楚，跨行是要收的。")
    assert [(h.behaviour, h.kind) for h in admits] == [("owning_mistakes", "admits")]
    assert detect_turn(spec, "好的谢谢。", "抱歉刚才没说清楚，跨行是要收的。") == ()


def test_an_alternative_outranks_the_refusal_in_the_same_turn(spec):
    hits = detect_turn(
        spec, "能不能把旧积分恢复？", "过期积分没办法直接恢复，不过我可以给您申请一张优惠券。"
    )
    assert [(h.kind, h.words) for h in hits if h.behaviour == "saying_no"][0][0] == (
        "positive_alternative"
    )
    refusal = detect_turn(spec, "能不能今天退款？", "不可能，退款都要七个工作日。")
    assert [(h.kind, h.words) for h in refusal] == [("negative_refusal", "不可能")]


def test_turns_give_each_agent_utterance_the_customer_speech_before_it():
    got = turns(
        [
            (0, "agent", "您好"),
            (1, "customer", "我等了很久"),
            (2, "customer", "太慢了！"),
            (3, "agent", "让您久等了"),
            (4, "agent", "我马上处理"),
            (5, "customer", "好"),
            (6, "agent", "还有别的吗"),
        ]
    )
    assert [(t.utterance_id, t.customer, t.answers) for t in got] == [
        (0, "", -1),
        (3, "我等了很久太慢了！", 0),
        (4, "我等了很久太慢了！", 0),
        (6, "好", 1),
    ]


def test_noise_is_seeded_and_substitutes_about_the_rate():
    text = "我非常理解您的心情来回打了这么多次电话确实让人着急" * 20
    a = add_noise(text, 0.10, "的一是了我不人在他有这", random.Random(3))
    assert a == add_noise(text, 0.10, "的一是了我不人在他有这", random.Random(3))
    changed = sum(x != y for x, y in zip(a, text, strict=True)) / len(text)
    assert 0.06 < changed < 0.14
    assert noisy(read_snippets(SNIPPETS / "tuned.tsv")[:3], 0.0, 1)[0].agent.startswith("航班")


def test_snippet_sets_are_balanced_and_use_known_labels(spec):
    for half in ("tuned", "held_out"):
        rows = read_snippets(SNIPPETS / f"{half}.tsv")
        for b in spec.behaviours:
            mine = [r for r in rows if r.behaviour == b.name]
            assert {r.label for r in mine} <= {*b.kinds, "none"}
            assert sum(r.label != "none" for r in mine) >= 15
            assert sum(r.label == "none" for r in mine) >= 15


def test_held_out_figures_do_not_fall_below_the_quoted_ones(spec):
    """The figures docs/METRICS.md quotes (scripts/behaviour_eval.py); an edit to the patterns
    that loses any of them fails here. talking_down recall (81%) is below the 90% target."""
    floors = {
        "empathy": (1.0, 1.0),
        "ownership": (1.0, 0.93),
        "saying_no": (1.0, 1.0),
        "owning_mistakes": (1.0, 1.0),
        "talking_down": (1.0, 0.81),
    }
    for sc in score(spec, read_snippets(SNIPPETS / "held_out.tsv")):
        assert sc.precision >= floors[sc.behaviour][0], sc
        assert sc.recall >= floors[sc.behaviour][1], sc


def test_a_wrong_pattern_file_stops_the_settings_load(tmp_path):
    from pipeline.config import ConfigError, load_config

    bad = MINIMAL.replace('phrases = ["理解您的心情"]', "phrases = [\"x\"]\nregex = ['[']")
    (tmp_path / "mine.toml").write_text(bad, encoding="utf-8")
    (tmp_path / "callreview.toml").write_text('[lexicon]\nbehaviours = "mine.toml"\n')
    with pytest.raises(ConfigError, match=r"mine\.toml:15: bad regular expression"):
        load_config(tmp_path / "callreview.toml", env={}, cwd=tmp_path)
    (tmp_path / "callreview.toml").write_text('[lexicon]\nknowledge_base = "scripts"\n')
    with pytest.raises(ConfigError, match="knowledge-base folder not found"):
        load_config(tmp_path / "callreview.toml", env={}, cwd=tmp_path)
    (tmp_path / "scripts").mkdir()
    config = load_config(tmp_path / "callreview.toml", env={}, cwd=tmp_path)
    assert config.lexicon.behaviours.knowledge_base == str(tmp_path / "scripts")


def test_a_broken_expression_in_the_shipped_file_is_placed_on_its_own_line(tmp_path):
    text = SHIPPED.read_text(encoding="utf-8")
    good, bad = "'都说了\\S{0,3}遍'", "'都说了\\S{0,3遍('"
    assert good in text
    line = next(i + 1 for i, row in enumerate(text.splitlines()) if good in row)
    with pytest.raises(BehaviourSpecError, match=rf"b\.toml:{line}: bad regular expression"):
        _load(tmp_path, text.replace(good, bad))


def test_an_edited_pattern_file_changes_the_settings_fingerprint(tmp_path):
    """The fingerprint decides whether a run recomputes every agent's derived rows: an edited
    pattern re-scores the whole history from its stored text, as an edited rule threshold does."""
    from pipeline.config import load_config
    from pipeline.review import settings_fingerprint

    shipped = load_config(None, env={}, cwd=tmp_path)
    edited = SHIPPED.read_text(encoding="utf-8").replace('"这是常识", ', '"这是常识", "你懂不懂", ')
    (tmp_path / "mine.toml").write_text(edited, encoding="utf-8")
    (tmp_path / "callreview.toml").write_text('[lexicon]\nbehaviours = "mine.toml"\n')
    mine = load_config(tmp_path / "callreview.toml", env={}, cwd=tmp_path)
    assert settings_fingerprint(shipped, {}) != settings_fingerprint(mine, {})
    same = load_config(tmp_path / "callreview.toml", env={}, cwd=tmp_path)
    assert settings_fingerprint(mine, {}) == settings_fingerprint(same, {})


def test_ascii_punctuation_as_whisper_writes_it_reads_like_chinese_punctuation(spec):
    for comma in ("，", ","):
        hits = detect_turn(spec, f"不对{comma}是五号楼。", f"不好意思{comma}是我记错了。")
        assert [h.kind for h in hits] == ["admits"], comma
        complaint = f"我等了一个小时了{comma}太慢了！"
        assert [h.kind for h in detect_turn(spec, complaint, f"我理解{comma}马上处理。")] == [
            "empathy"
        ]
