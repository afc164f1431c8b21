"""The [asr] settings (pipeline/data/callreview.toml documents each) and the hotword prompt
built from them. Light on purpose (pydantic only): pipeline.config imports it."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

from pipeline.digit_runs import DEFAULT_OPTIONS as DEFAULT_REDACTION
from pipeline.digit_runs import RedactOptions

_STRICT = ConfigDict(extra="forbid", frozen=True)


@dataclass(config=_STRICT)
class AsrOptions:
    batch_size: int
    window_s: float
    gap_s: float
    onset_s: float
    whole_piece_share: float
    seek_min_s: float
    retry_coverage: float
    no_speech_max: float
    logprob_min: float
    compression_ratio_max: float
    fallback_temperatures: tuple[float, ...]
    split_snap_chars: int = 4  # a text split between pieces is cut at a clause end this near
    beam_size: int = 1  # second pass for windows whose greedy text is weak (1: none)
    beam_logprob: float = -0.5  # weak: greedy average log-probability below this
    compute: Literal["auto", "fp32", "bf16", "int8", "fp16"] = "auto"  # pipeline/asr/decode.py
    hotwords: tuple[str, ...] = ()  # the terms of the [asr] hotwords file
    hotword_prompt: bool = True  # give the hotwords to Whisper as previous text
    hallucinations: tuple[str, ...] = ()  # filled from [lexicon] hallucinations
    redaction: RedactOptions = DEFAULT_REDACTION  # PII masking (pipeline/redact.py documents it)

    @property
    def prompt(self) -> str:
        """Whisper's previous text for every window: the hotwords when the prompt is on."""
        return hotword_text(self.hotwords) if self.hotword_prompt else ""


# marks after which a clause ends: the prompt keeps them, pipeline.windows cuts a text there
CLAUSE_ENDS = "，。？！、；：,.?!;:"


def hotword_text(terms: tuple[str, ...]) -> str:
    """Terms as one line of previous text: an enumeration joined by 、 (one token; ， costs
    three of Whisper's 223), a line that already ends a clause keeping its own mark, ended by
    a full stop. Whisper was trained on previous text that is transcript, so a punctuated line
    reads to it like earlier speech."""
    text = ""
    for term in terms:
        if text and text[-1] not in CLAUSE_ENDS:
            text += "、"
        text += term
    return text + "。" if text and text[-1] not in CLAUSE_ENDS else text
