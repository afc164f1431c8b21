"""How redaction reads digits in a Chinese transcript: which characters are digits, which
runs of them are values QA must keep readable (prices, counts, dates, times, e-mail parts set
aside) and which are identifiers to mask, and what kind each is. pipeline/redact.py applies it
to texts and utterances; its docstring tells the whole procedure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

Kind = Literal["phone", "id", "card", "email", "number"]
NUMERAL_WORDS_FILE = Path(__file__).resolve().parent / "data" / "numeral_words.txt"


def read_numeral_words(path: Path = NUMERAL_WORDS_FILE) -> frozenset[str]:
    """The words with a numeral at one end (一直, 两点, 唯一) from a file: one per line, # comments."""
    with open(path, encoding="utf-8") as f:
        return frozenset(w for line in f if (w := line.strip()) and not w.startswith("#"))


# --- options and spans ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedactOptions:
    """What is masked and how. The defaults are the recommended settings.

    min_digits: a digit run at least this long is masked even when its shape is unknown (order,
        QQ, account numbers). Shorter runs stay readable: prices, counts, and the last four
        digits of a phone that agents read back to verify a caller.
    max_value_digits: the most digits a price, count or quantity written in digits has; a
        longer run is an identifier whatever unit follows it (round amounts and thousands
        commas aside: 13500000000元, 1,234,567,890).
    numeral_words: words with a numeral at one end (pipeline/data/numeral_words.txt): a numeral
        at the edge of a run that forms one with its neighbour is read as part of the word.
    max_gap: separators allowed between two digits of one number ("138 - 0013", "一三八，嗯，零").
    mask_emails: also mask e-mail addresses, written or spoken.
    join_gap_s: a speaker's utterances at most this far apart are read together, so a number
        split by a pause is found in both parts. Other speakers' turns in between do not matter.
    mute_pad_s: seconds added before and after a masked span's estimated time: the time is
        interpolated from the character position, so it is approximate.
    *_token: what replaces each kind of PII in the stored text.
    """

    min_digits: int = 7
    max_value_digits: int = 9
    max_gap: int = 3
    mask_emails: bool = True
    join_gap_s: float = 3.0
    mute_pad_s: float = 0.3
    phone_token: str = "<PHONE>"
    id_token: str = "<ID>"
    card_token: str = "<CARD>"
    email_token: str = "<EMAIL>"
    number_token: str = "<NUM>"
    numeral_words: frozenset[str] = field(default_factory=read_numeral_words, repr=False)

    def token(self, kind: Kind) -> str:
        return {
            "phone": self.phone_token,
            "id": self.id_token,
            "card": self.card_token,
            "email": self.email_token,
            "number": self.number_token,
        }[kind]


DEFAULT_OPTIONS = RedactOptions()


@dataclass(frozen=True)
class Span:
    """A masked stretch of the ORIGINAL text: text[start_char:end_char]."""

    kind: Kind
    start_char: int
    end_char: int


# --- characters ------------------------------------------------------------------------------

DIGIT_VALUE: dict[str, str] = {
    **{str(i): str(i) for i in range(10)},
    **{chr(ord("０") + i): str(i) for i in range(10)},  # full-width
    **dict(zip("零〇一二三四五六七八九", "00123456789", strict=True)),
    "幺": "1",  # how 1 is read in phone and ID numbers
    "两": "2",
}
_SPOKEN = frozenset("零〇一二三四五六七八九幺两")
_DIGITS = "".join(DIGIT_VALUE)  # as a regex character class: none of these is special
_ARABIC = "0-9０-９"
GAP_MARKS = "-－—–‐,，、()（）嗯呃"  # with whitespace, may sit between two digits of one number
_GAPS = r"\s" + re.escape(GAP_MARKS)  # as a regex character class
BLANK = "\x00"  # stands in for anything already set aside (e-mails, dates, mask tokens)
_SENTENCE_END = frozenset("。！？!?；;\n")

# A run of digits is a value, not a digit string, when one of these stands beside it.
_POSITIONAL = frozenset("十拾百佰千仟万萬亿億")
_MONEY_BEFORE = frozenset("¥￥$＄")
_VALUE_AFTER = (
    _POSITIONAL
    | frozenset(
        "元块圆角毛%％"  # money, percent
        "个件次天年月日周岁台张条人份瓶箱套斤克吨米倍笔期单遍位包盒袋双杯部页项"  # measure words; not 分 (分机)
    )
)
_DECIMAL_POINT = frozenset(".．点")
_RANGE_DASH = frozenset("-－—–‐~～")
_LIST_COMMA = frozenset("、，,")
_THOUSANDS = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")
_ROUND = re.compile(r"[1-9][0-9]{0,2}0{4,}")  # 1000000, 2500000: an amount, not an identifier


# --- e-mail addresses, dates and times -------------------------------------------------------

EMAIL_WRITTEN = re.compile(
    r"[A-Za-z0-9._%+\-]+\s*[@＠]\s*"  # local part, at
    r"[A-Za-z0-9\-]+(?:\s*[.．]\s*[A-Za-z0-9\-]+)*\s*[.．]\s*[A-Za-z]{2,}"  # domain
)
# Spoken: QQ mailboxes are read as numerals (一二三四五六七八九艾特qq点com), '@' as 艾特 or at,
# '.' as 点 or dot, '_' as 下划线. The top-level domain must be a known one.
_WORD = rf"[A-Za-z0-9０-９{''.join(sorted(_SPOKEN))}]+"
EMAIL_SPOKEN = re.compile(
    rf"{_WORD}(?:(?:\s*(?:[._+\-]|下划线|杠|点)\s*|\s+){_WORD})*"  # local part
    r"\s*(?:[@＠]|艾特|爱特|(?<![a-z])at(?![a-z]))\s*"  # at
    rf"{_WORD}(?:\s*(?:[.．。]|点|(?<![a-z])dot(?![a-z]))\s*{_WORD})*?"  # domain
    r"\s*(?:[.．。]|点|(?<![a-z])dot(?![a-z]))\s*"
    r"(?:com|cn|net|org|edu|gov|info|biz|top|vip|xyz|io|co|cc|me|hk|tw|mo|us|uk|jp)"
    r"(?:\s*(?:[.．]|点|dot)\s*(?:cn|hk|tw|uk|jp))?"
    r"(?![a-z])",
    re.IGNORECASE,
)
TIME = re.compile(  # 14:30, 14:30:00
    rf"(?<![{_DIGITS}])[{_ARABIC}]{{1,2}}\s*[:：]\s*[{_ARABIC}]{{2}}"
    rf"(?:\s*[:：]\s*[{_ARABIC}]{{2}})?(?![{_DIGITS}])"
)
# 2024-03-15, 2024/3/15, 2024.03.15; find_pii checks that no other digits touch it
DATE = re.compile(
    r"(?:19|20)[0-9]{2}\s*(?P<sep>[-/.．])\s*(?:1[0-2]|0?[1-9])"
    r"\s*(?P=sep)\s*(?:3[01]|[12][0-9]|0?[1-9])"
)


# --- digit runs ------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def run_pattern(max_gap: int) -> re.Pattern[str]:
    return re.compile(rf"[{_DIGITS}](?:[{_GAPS}]{{0,{max_gap}}}[{_DIGITS}])*")


# The ID check character X, also read out as 叉 or 艾克斯, after 17 digits.
_ID_CHECK_X = re.compile(r"[\s\-]?(?:[XxＸｘ叉]|艾克斯)")

# Keywords just before a number that say what it is; the closest one wins.
_HINTS: dict[str, Kind] = {
    word: kind
    for kind, words in (
        ("id", "身份证号码 身份证号 身份证 证件号码 证件号"),
        ("card", "银行卡号 银行卡 信用卡 储蓄卡 借记卡 卡号 账号 帐号 账户"),
        ("number", "订单号 单号 工单号 会员号 QQ号 QQ qq"),
        ("phone", "手机号码 手机号 手机 电话号码 电话 座机 号码 联系方式 热线 拨打 打给 来电"),
    )
    for word in words.split()
}
_HINT_PATTERN = re.compile("|".join(sorted(_HINTS, key=len, reverse=True)))
_HINT_WINDOW = 12  # characters looked back from a number for a keyword
# Digit counts each hinted kind can have (seven or more: a keyword never masks a short number);
# outside them the number's shape decides.
_HINT_FITS: dict[Kind, range] = {
    "phone": range(7, 16),
    "id": range(15, 19),
    "card": range(12, 20),
    "number": range(7, 100),
}
_STRONG: frozenset[Kind] = frozenset(("phone", "id", "card"))


def _shape(digits: str) -> Kind | None:
    """The kind a digit string has by its shape alone, or None."""
    n = len(digits)
    if n == 11 and digits[0] == "1" and digits[1] in "3456789":
        return "phone"  # mobile
    if (n == 13 and digits.startswith("861")) or (n == 15 and digits.startswith("00861")):
        return "phone"  # mobile with the country code
    if digits.startswith("0") and 10 <= n <= 12:
        return "phone"  # landline: area code 010, 021, 0755... then 7 or 8 digits
    if n == 10 and digits[:3] in ("400", "800"):
        return "phone"  # service numbers
    if n == 18 and digits[6:8] in ("19", "20") and "01" <= digits[10:12] <= "12":
        return "id"  # six-digit region, then the birth date YYYYMMDD
    if 16 <= n <= 19:
        return "card"
    return None


def _hint(blanked: str, start: int) -> Kind | None:
    """The kind named by the closest keyword before `start`, looking back at most
    _HINT_WINDOW characters and never past another number, a masked stretch or a sentence end."""
    i = start
    while i > 0 and start - i < _HINT_WINDOW:
        ch = blanked[i - 1]
        if ch in DIGIT_VALUE or ch == BLANK or ch in _SENTENCE_END:
            break
        i -= 1
    found = _HINT_PATTERN.findall(blanked, i, start)
    return _HINTS[found[-1]] if found else None


def _kind(digits: str, hint: Kind | None, options: RedactOptions) -> Kind | None:
    """What a run of digits is: a keyword before it decides when the length fits, else its shape,
    else a plain long number; None when it is short and shapeless."""
    if hint is not None and len(digits) in _HINT_FITS[hint]:
        return hint
    shape = _shape(digits)
    if shape is not None:
        return shape
    return "number" if len(digits) >= options.min_digits else None


def _value_before(blanked: str, start: int) -> bool:
    prev = blanked[start - 1] if start > 0 else ""
    if prev in _POSITIONAL or prev in _MONEY_BEFORE:
        return True
    return prev in _DECIMAL_POINT and start >= 2 and blanked[start - 2] in DIGIT_VALUE


def _value_after(blanked: str, end: int) -> bool:
    nxt = blanked[end] if end < len(blanked) else ""
    if nxt in _VALUE_AFTER:
        return True
    return nxt in _DECIMAL_POINT and end + 1 < len(blanked) and blanked[end + 1] in DIGIT_VALUE


def _several_values(run: str, digits: str, options: RedactOptions) -> bool:
    """Whether a long run without a keyword reads as amounts rather than one number: a range
    (1500-3000: two bounds without leading zeros, the first lower, no more digits than a value
    has), a list (50、100、200、500), thousands commas (1,234,567) or a round amount (1000000)."""
    groups = [
        "".join(DIGIT_VALUE[ch] for ch in g if ch in DIGIT_VALUE)
        for g in re.split(rf"[{_GAPS}]+", run)
    ]
    short = all(len(g) < options.min_digits for g in groups)
    is_range = (
        short
        and len(groups) == 2
        and any(ch in _RANGE_DASH for ch in run)
        and len(digits) <= options.max_value_digits
        and all(g and g[0] != "0" for g in groups)
        and int(groups[0] or 0) < int(groups[1] or 0)
    )
    is_list = short and len(groups) >= 3 and any(ch in _LIST_COMMA for ch in run)
    is_amount = _THOUSANDS.fullmatch(run) or _ROUND.fullmatch(digits)
    return is_range or is_list or is_amount is not None


def _strong_core(blanked: str, positions: list[int], digits: str) -> Span | None:
    """A phone, ID or card number inside a run that has one or two numerals of the next or
    previous words stuck to it: 13812345678两次, 万一13800138000, ...八零零零一下."""
    n = len(positions)
    for head in (0, 1, 2):
        for tail in (0, 1, 2):
            edges = positions[:head] + positions[n - tail :]
            if (
                head + tail == 0
                or head + tail >= n
                or any(blanked[i] not in _SPOKEN for i in edges)
            ):
                continue
            kind = _shape(digits[head : n - tail])
            start, end = positions[head], positions[n - tail - 1] + 1
            if kind is None or (head == 0 and _value_before(blanked, start)):
                continue
            if tail == 0 and _value_after(blanked, end):
                continue
            return Span(kind, start, end)
    return None


def _several_numbers(positions: list[int], digits: str) -> list[Span]:
    """Several phone, ID or card numbers read one after another (13800138000、13900139000):
    the run cut at separators into pieces that each have a shape, or [] when it cannot be."""
    n = len(positions)
    cuts = [0] + [k for k in range(1, n) if positions[k] - positions[k - 1] > 1] + [n]
    rest: list[list[Span] | None] = [None] * (len(cuts) - 1) + [[]]  # rest[a]: pieces from cut a
    for a in reversed(range(len(cuts) - 1)):
        for b in range(a + 1, len(cuts)):
            kind = _shape(digits[cuts[a] : cuts[b]])
            tail = rest[b]
            if kind is not None and tail is not None:
                rest[a] = [Span(kind, positions[cuts[a]], positions[cuts[b] - 1] + 1), *tail]
                break
    pieces = rest[0]
    return pieces if pieces is not None and len(pieces) > 1 else []


def _plausible_value(
    blanked: str, start: int, end: int, digits: str, options: RedactOptions
) -> bool:
    """Whether blanked[start:end] could be a price, count or quantity at all: written digits,
    few enough of them, or a round amount or thousands commas. A run read numeral by numeral
    (一三八...) of min_digits or more is one only before a positional unit (...七八九十)."""
    run = blanked[start:end]
    if _THOUSANDS.fullmatch(run) or _ROUND.fullmatch(digits):
        return True
    if all(ch in _SPOKEN for ch in run if ch in DIGIT_VALUE):
        nxt = blanked[end] if end < len(blanked) else ""
        return len(digits) < options.min_digits or nxt in _POSITIONAL
    return len(digits) <= options.max_value_digits


def _neighbours(
    blanked: str, positions: list[int], digits: str, hint: Kind | None, options: RedactOptions
) -> tuple[int, int]:
    """How many digits at the head and the tail of a run belong to the words beside it rather
    than to the number: numerals after the last written digit ("13912345678一共", "...5678
    两天"); a numeral that makes a word with the character after it (一直, 两点, 一下); the
    count before a measure word after a run too long to be a value (卡号...三天, "...5678 3个");
    a numeral that ends a word begun before the run (唯一1234567890)."""
    n = len(positions)
    spoken = [blanked[i] in _SPOKEN for i in positions]
    end = positions[-1] + 1
    nxt = blanked[end] if end < len(blanked) else ""
    word_after = spoken[-1] and blanked[positions[-1]] + nxt in options.numeral_words
    head = tail = 0
    if any(spoken) and not all(spoken):
        trailing = spoken[::-1].index(False)
        if trailing <= 2 and (word_after or _value_after(blanked, end)):
            tail = trailing
        before = blanked[positions[0] - 1] if positions[0] > 0 else ""
        if spoken.index(False) == 1 and before + blanked[positions[0]] in options.numeral_words:
            head = 1
    if tail == 0 and word_after:
        tail = 1
    if (
        tail == 0
        and _value_after(blanked, end)
        and (hint is not None or not _plausible_value(blanked, positions[0], end, digits, options))
    ):
        gaps = [k for k in range(1, n) if positions[k] - positions[k - 1] > 1]
        if spoken[-1]:
            tail = 1  # 三天, 两笔: one numeral counts
        elif gaps and n - gaps[-1] <= 2:
            tail = n - gaps[-1]  # "... 3个": a count set apart from the number
    if n - head - tail < options.min_digits:  # too short to mask without them: one number
        return 0, 0
    return head, tail


def _id_with_check_x(blanked: str, start: int, end: int, digits: str) -> list[Span]:
    """An ID whose 17 digits are followed by its check character X: the span, or []."""
    check_x = _ID_CHECK_X.match(blanked, end)
    return [Span("id", start, check_x.end())] if len(digits) == 17 and check_x else []


def judge_run(blanked: str, start: int, end: int, options: RedactOptions) -> list[Span]:
    """The spans to mask in the digit run blanked[start:end]: none when it stays readable."""
    positions = [i for i in range(start, end) if blanked[i] in DIGIT_VALUE]
    digits = "".join(DIGIT_VALUE[blanked[i]] for i in positions)
    if found := _id_with_check_x(blanked, start, end, digits):
        return found

    hint = _hint(blanked, start)
    head, tail = _neighbours(blanked, positions, digits, hint, options)
    if head or tail:  # the number without its neighbours' numerals
        positions = positions[head : len(positions) - tail]
        digits = digits[head : len(digits) - tail]
        start, end = positions[0], positions[-1] + 1
        if found := _id_with_check_x(blanked, start, end, digits):
            return found

    kind = _kind(digits, hint, options)
    is_value = (_value_before(blanked, start) or _value_after(blanked, end)) and _plausible_value(
        blanked, start, end, digits, options
    )
    if (kind in _STRONG or (kind is not None and kind == hint)) and not is_value:
        return [Span(kind, start, end)]
    # numerals of the next or previous words stuck to a phone, ID or card number
    core = None if head or tail else _strong_core(blanked, positions, digits)
    if core is not None:
        return [core]
    if kind is None or is_value:
        return []
    several = _several_numbers(positions, digits)
    if several:
        return several
    if hint is None and _several_values(blanked[start:end], digits, options):
        return []
    return [Span(kind, start, end)]
