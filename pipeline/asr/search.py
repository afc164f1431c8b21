"""Beam search and sampling through openai-whisper's own decoder (whisper.decode's task),
for the few windows that need them: pipeline/asr/decode.py decodes everything else greedily
with its own loop."""

from __future__ import annotations

import torch
import whisper
from torch import Tensor

LANGUAGE = "zh"


class _GroupedTask(whisper.decoding.DecodingTask):
    """whisper.decode's task, with the audio features repeated once per beam (or sample) as
    the text tokens are: openai-whisper 20240930 repeats only the tokens, so a batch of more
    than one window fails under beam search or best-of sampling."""

    def _get_audio_features(self, mel: Tensor) -> Tensor:
        return super()._get_audio_features(mel).repeat_interleave(self.n_group, dim=0)

    def _detect_language(self, audio_features: Tensor, tokens: Tensor) -> tuple:
        return super()._detect_language(audio_features[:: self.n_group], tokens)


def whisper_decode(
    model: whisper.Whisper,
    features: Tensor,
    temperature: float,
    beam_size: int,
    prompt: str = "",
) -> list[whisper.DecodingResult]:
    """Decode a batch of encoded windows: beam search of `beam_size` at temperature 0, best of
    5 samples above it; `prompt` is given as previous text."""
    sampled = temperature > 0
    options = whisper.DecodingOptions(
        language=LANGUAGE,
        temperature=temperature,
        best_of=5 if sampled else None,
        beam_size=None if sampled or beam_size <= 1 else beam_size,
        prompt=prompt or None,
        fp16=features.dtype == torch.float16,
    )
    with torch.inference_mode():
        return _GroupedTask(model, options).run(features)
