"""CTranslate2 Whisper variables -> an openai-whisper checkpoint dict, and its alignment heads.

CTranslate2 fuses the attention projections (q|k|v in self-attention, k|v in cross-attention)
and names LayerNorm parameters gamma/beta; openai-whisper keeps them apart and calls them
weight/bias. `ct2_to_openai` undoes both, checks that nothing was left over, and carries the
model's word-timing heads along, which `set_alignment_heads` puts back on a loaded model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import whisper.model

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


def set_alignment_heads(model: whisper.model.Whisper, heads: Sequence[Sequence[int]]) -> None:
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
