"""Transcript text: simplified Chinese, PII masking, phrase counting, tokenising.

Everything stored or scored goes through `normalise` first, so counts and similarities see
the same text analysts read.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

import jieba
import opencc

from pipeline.redact import redact

jieba.setLogLevel(logging.WARNING)

# Whisper often answers in traditional characters; OpenCC t2s beat a "simplified" prompt on CER
# here and cannot leak into silences the way a prompt can.
_T2S = opencc.OpenCC("t2s")

_FULL_WIDTH = {",": "，", "?": "？", "!": "！", ";": "；", ":": "："}
_ASCII_MARK = re.compile(r"[?!;]|(?<!\d)[,:]|[,:](?!\d)")
_PUNCT = re.compile(r"[\s，。？！、；：,.?!;:\"'“”‘’()（）《》【】…—\-]+")


def to_simplified(text: str) -> str:
    # OpenCC takes UTF-8: a lone surrogate (never real text) would make it raise.
    return _T2S.convert(text.encode("utf-8", "replace").decode("utf-8"))


def mask_pii(text: str) -> str:
    """Phone, ID and card numbers and e-mail addresses masked (pipeline/redact.py)."""
    return redact(text)[0]


def full_width_punctuation(text: str) -> str:
    """Whisper's ASCII , ? ! ; : as the full-width marks Chinese text uses (the phrase lists'
    啊？ and 是吗？ match only these); a mark between two digits (1,000, 10:30) stays."""
    return _ASCII_MARK.sub(lambda m: _FULL_WIDTH[m.group(0)], text)


def simplify(text: str) -> str:
    """Whisper output -> simplified, trimmed text with Chinese punctuation (before redaction,
    which needs a call's utterances together: a number can be read across two of them)."""
    return full_width_punctuation(to_simplified(text).strip())


def normalise(text: str) -> str:
    """Whisper output -> stored text for one text alone: simplified, trimmed, PII-masked."""
    return mask_pii(simplify(text))


def strip_punct(text: str) -> str:
    return _PUNCT.sub("", text)


def n_chars(text: str) -> int:
    """Spoken characters: what 字/分钟 counts (no punctuation, spaces or mask tokens)."""
    return len(strip_punct(re.sub(r"<[A-Z]+>", "", text)))


def count_phrases(text: str, phrases: tuple[str, ...]) -> int:
    """Occurrences of any listed phrase; a longer phrase hides the shorter ones inside it."""
    count = 0
    remaining = text
    for phrase in sorted(phrases, key=len, reverse=True):
        if phrase and "\0" not in phrase and phrase in remaining:  # \0 marks counted hits
            count += remaining.count(phrase)
            remaining = remaining.replace(phrase, "\0")
    return count


@lru_cache(maxsize=4)
def tokenizer(jargon: tuple[str, ...]) -> jieba.Tokenizer:
    """A jieba tokenizer that keeps every jargon term whole (built once per word list: ~0.5 s)."""
    tok = jieba.Tokenizer()
    for term in jargon:
        tok.add_word(term, freq=2000)
    return tok


def words(text: str, jargon: tuple[str, ...]) -> list[str]:
    """jieba words without punctuation, jargon kept whole."""
    return [w for w in tokenizer(jargon).lcut(strip_punct(text)) if w.strip()]


def char_ngrams(text: str, n: int = 2) -> list[str]:
    s = strip_punct(text)
    return [s[i : i + n] for i in range(len(s) - n + 1)] or ([s] if s else [])


def is_hallucination(text: str, known: tuple[str, ...]) -> bool:
    """Whether `text` holds one of the texts Whisper is known to invent on noise."""
    simplified = to_simplified(text)
    return any(to_simplified(h) in simplified for h in known)


def echoes_prompt(text: str, prompt: str) -> bool:
    """Whether `text` is Whisper copying its previous text: every clause of it (split at
    punctuation) is a stretch of `prompt`, as on silence with the hotword prompt on."""
    clauses = [c for c in _PUNCT.split(to_simplified(text)) if c]
    return bool(clauses) and all(c in prompt for c in clauses)


_DIGIT = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "幺": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_UNIT = {"十": 10, "百": 100, "千": 1000}
_NUMERAL_RUN = re.compile(r"[零〇一幺二两三四五六七八九十百千万]+")


def _numeral_value(run: str) -> str:
    if not any(ch in _UNIT or ch == "万" for ch in run):
        return "".join(str(_DIGIT[ch]) for ch in run)  # read digit by digit: 三七五二 -> 3752
    total = section = num = 0
    for ch in run:
        if ch in _DIGIT:
            num = _DIGIT[ch]
        elif ch in _UNIT:
            section += (num or 1) * _UNIT[ch]
            num = 0
        else:  # 万
            total += (section + num) * 10_000
            section = num = 0
    return str(total + section + num)


def numerals_to_digits(text: str) -> str:
    """Chinese numerals -> Arabic digits (一百五十八 -> 158, 三七五二 -> 3752).

    Whisper writes most numbers as digits while scripts and people write them in characters;
    comparing transcripts (CER, search) needs one form. Applied to both sides, words that merely
    contain a numeral (一下) change the same way on each side.
    """
    return _NUMERAL_RUN.sub(lambda m: _numeral_value(m.group()), text)
