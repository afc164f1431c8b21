"""When each character of a transcribed text was spoken: openai-whisper's own word timing
(cross-attention of the checkpoint's alignment heads, aligned by dynamic time warping; what
`transcribe(word_timestamps=True)` uses), forced on a known text over one utterance's audio.

Used where a time finer than the utterance matters: a masked phone number must be muted where
it is said, and no longer. Whisper splits Chinese into single characters (or the few characters
of one token) for this, so a masked span's first and last characters get their own times.
"""

from __future__ import annotations

import numpy as np
import torch
import whisper
from whisper.audio import HOP_LENGTH, N_FRAMES, N_SAMPLES
from whisper.timing import find_alignment
from whisper.tokenizer import Tokenizer

CharTimes = list[tuple[float, float]]


def char_times(
    model: whisper.Whisper, tokenizer: Tokenizer, clip: np.ndarray, text: str
) -> CharTimes | None:
    """(start_s, end_s) from the clip's start for every character of `text`, or None where the
    model has no alignment heads, the clip is empty or longer than one window, or the text
    does not come back whole from the aligner."""
    if not text or len(clip) == 0 or len(clip) > N_SAMPLES or model.alignment_heads is None:
        return None
    audio = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))
    mel = whisper.log_mel_spectrogram(audio, model.dims.n_mels, padding=N_SAMPLES)
    mel = mel[:, :N_FRAMES].to(model.device)
    if model.device.type == "cuda":
        mel = mel.to(next(model.parameters()).dtype)
    words = find_alignment(model, tokenizer, tokenizer.encode(text), mel, len(clip) // HOP_LENGTH)
    times: CharTimes = []
    for word in words:
        times += [(float(word.start), float(word.end))] * len(word.word)
    if "".join(w.word for w in words) != text:
        return None
    return times
