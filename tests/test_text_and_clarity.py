"""Text normalisation, phrase counting and clarity figures on real Chinese text."""

from pipeline.clarity import bigram_jaccard, call_clarity, sentences, word_count_and_jargon
from pipeline.config import default_config
from pipeline.records import Utterance
from pipeline.text import count_phrases, is_hallucination, mask_pii, n_chars, normalise
from pipeline.tone import phrase_counts

CONFIG = default_config()
LEX = CONFIG.lexicon


def test_normalise_simplifies_and_masks_pii():
    assert normalise(" 請問您的訂單號碼 ") == "请问您的订单号码"
    assert mask_pii("我的手机是13812345678") == "我的手机是<PHONE>"
    assert mask_pii("身份证11010519491231002X") == "身份证<ID>"
    assert mask_pii("卡号六二二八四八零三二一") == "卡号<NUM>"  # 10 digits: no card shape
    assert mask_pii("三天后到账") == "三天后到账"  # short numbers stay


def test_stored_text_has_chinese_punctuation_so_the_confusion_phrases_match():
    """Whisper writes ASCII marks ("什么意思啊?"); the lists hold 啊？ and 是吗？, so a
    customer's 啊? was never counted. Marks between digits (amounts, times) stay."""
    heard = "什么意思啊?我没听懂,是吗?好的!1,000元,10:30到"
    stored = normalise(heard)
    assert stored == "什么意思啊？我没听懂，是吗？好的！1,000元，10:30到"
    assert phrase_counts(stored, LEX)["confusion"] == 4  # 什么意思, 没听懂, 啊？, 是吗？
    assert phrase_counts(heard, LEX)["confusion"] == 2


def test_n_chars_counts_spoken_characters_only():
    assert n_chars("您好，请问？ <NUM> ok") == 6


def test_longer_phrase_hides_the_shorter_inside_it():
    assert count_phrases("我已经说得很明白了，我说了", ("我已经说得很明白了", "我说了")) == 2
    assert count_phrases("不好意思", ("不好意思", "意思")) == 1


def test_phrase_lists_from_the_data_file():
    hits = phrase_counts("不是跟你说了吗，这不是我们的问题", LEX)
    assert hits["impatience"] == 2 and hits["politeness"] == 0
    assert phrase_counts("您看这样清楚吗？还有什么问题吗？", LEX)["confirmation"] == 2
    assert phrase_counts("什么意思？我没听懂，您再说一遍", LEX)["confusion"] == 3
    assert phrase_counts("首先，然后，最后", LEX)["structure"] == 3
    assert phrase_counts("这不归我们管，爱投诉就去投诉", LEX)["forbidden"] == 2


def test_jargon_uses_the_domain_dictionary_as_whole_words():
    n_words, jargon = word_count_and_jargon("退款会原路退回，需要三个工作日到账", LEX.jargon)
    assert jargon == 3 and n_words >= 6


def test_sentences_and_repeats_and_answer_length():
    assert sentences("首先退款。然后到账！好的") == ["首先退款", "然后到账", "好的"]
    assert bigram_jaccard("退款会原路退回到您的卡上", "退款会原路退回到您的卡上") == 1.0
    utts = [
        Utterance("c", 0, "agent", 0, 2, "您好，请问有什么可以帮您"),
        Utterance("c", 1, "customer", 2, 4, "我的退款什么时候到"),
        Utterance("c", 2, "agent", 4, 8, "退款会原路退回到您的银行卡上，三个工作日到账"),
        Utterance("c", 3, "customer", 8, 9, "什么意思"),
        Utterance("c", 4, "agent", 9, 13, "退款会原路退回到您的银行卡上，三个工作日内到账"),
    ]
    c = call_clarity(utts, CONFIG.clarity)
    assert c.repeat_count == 1
    assert c.chars_per_customer_turn == (n_chars(utts[2].text) + n_chars(utts[4].text)) / 2
    assert c.long_sentence_share == 0.0


def test_known_whisper_hallucinations_are_recognised():
    assert is_hallucination("字幕由Amara.org社區提供", CONFIG.asr.hallucinations)
    assert not is_hallucination("您好，请问有什么可以帮您", CONFIG.asr.hallucinations)


def test_chinese_numerals_become_digits():
    from pipeline.text import numerals_to_digits

    assert numerals_to_digits("一百五十八块，退了一百二十八") == "158块，退了128"
    assert (
        numerals_to_digits("尾号三七五二，两百，一百零八，一万两千三百")
        == "尾号3752，200，108，12300"
    )
