"""Scoring transcripts against reference text: Chinese normalisation and character error rate.

Used to verify the prepared checkpoint (pipeline.asr.verify), by the end-to-end tests and by
scripts/benchmark.py, so that every CER reported here is computed the same way.
"""

from __future__ import annotations

import unicodedata

from pipeline.text import to_simplified


def normalize_zh(text: str) -> str:
    """Simplified characters, lowercase, letters and digits only: what CER is computed on.

    Whisper often answers Mandarin in traditional characters, so both sides are simplified.
    Unicode categories L* and N* are kept (rather than text.strip_punct's list) so that no
    punctuation or symbol, listed or not, can count as an error.
    """
    return "".join(ch for ch in to_simplified(text).lower() if unicodedata.category(ch)[0] in "LN")


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate: Levenshtein distance / reference length (normalised texts)."""
    hyp, ref = normalize_zh(hypothesis), normalize_zh(reference)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1] / len(ref)
