"""Write pipeline/data/numeral_words.txt: two-character words with a numeral at one end, drawn
from jieba's dictionary (一直, 一共, 两点, 一下, 三天 ...; 唯一, 万一, 统一 ...).

The masker (pipeline/digit_runs.py) reads a spoken numeral at the edge of a digit run that
forms one of these words with the character beside it as that word's first or last character,
not as a digit of the number: "一三八零零一三八零零零一直" keeps 一直 readable.

    .venv/bin/python scripts/numeral_words.py [--min-freq 30]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jieba

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "pipeline" / "data" / "numeral_words.txt"
NUMERALS = set("零〇一二三四五六七八九幺两")
POSITIONAL = set("十拾百佰千仟万萬亿億")
HEADER = """\
# Two-character words with a numeral at one end (pipeline/digit_runs.py): a spoken numeral at
# the edge of a digit run that forms one of these words with its neighbour belongs to the word,
# not to the number ("...零零零一直" keeps 一直). One word per line; add your own.
# Drawn from jieba's dictionary by scripts/numeral_words.py (frequency >= {min_freq}).
"""


def _han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--min-freq", type=int, default=30)
    args = p.parse_args()
    words = []
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as f:
        for line in f:
            word, freq, *_ = line.split()
            if len(word) != 2 or int(freq) < args.min_freq or not all(map(_han, word)):
                continue
            first, last = word
            if (
                first in NUMERALS
                and last not in NUMERALS | POSITIONAL
                or last in NUMERALS
                and first not in NUMERALS
            ):
                words.append(word)
    text = HEADER.format(min_freq=args.min_freq) + "\n".join(sorted(set(words))) + "\n"
    OUT.write_text(text, encoding="utf-8")
    print(f"{len(set(words))} words -> {OUT}")


if __name__ == "__main__":
    main()
