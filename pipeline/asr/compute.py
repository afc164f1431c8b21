"""How the model's weights are run on this machine (the `compute` modes pipeline/asr/decode.py
documents): which mode `auto` means here, and the bf16 / int8 copies of its layers."""

from __future__ import annotations

import contextlib
import copy
import warnings

import torch
from torch import Tensor, nn

COMPUTE_MODES = ("auto", "fp32", "bf16", "int8", "fp16")


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16).

    Without it oneDNN emulates bf16 and autocast is slower than fp32. Uses torch's own cpuinfo
    query (torch.cpu._is_*_supported, torch >= 2.3); unknown means False.
    """
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, name, None)
        with contextlib.suppress(Exception):
            if check is not None and check():
                return True
    return False


def resolve_compute(compute: str, device: torch.device | str) -> str:
    """The mode `compute` means on `device` (bf16/int8 ask for fp32 on CUDA)."""
    if compute not in COMPUTE_MODES:
        raise ValueError(f"unknown compute {compute!r}: one of {', '.join(COMPUTE_MODES)}")
    cuda = torch.device(device).type == "cuda"
    if compute == "auto":
        return "fp16" if cuda else ("bf16" if cpu_has_native_bf16() else "int8")
    if cuda and compute != "fp16":
        return "fp32"
    if not cuda and compute == "fp16":
        raise ValueError("compute fp16 needs a CUDA device")
    return compute


def with_dtype(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of `module` whose Linear layers hold `dtype` weights; everything else (norms,
    embeddings) is shared with `module`, not copied."""
    shared = [
        t
        for m in module.modules()
        if not isinstance(m, nn.Linear)
        for t in m.parameters(recurse=False)
    ]
    clone = copy.deepcopy(module, {id(t): t for t in [*shared, *module.buffers()]})
    for sub in clone.modules():
        if isinstance(sub, nn.Linear):
            sub.to(dtype)
    return clone


def int8_projection(weight: Tensor) -> nn.Module:
    """x -> x @ weight.T with int8 weights (per-row scales; activations quantised per call)."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    linear.weight = nn.Parameter(weight.detach(), requires_grad=False)
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        return torch.ao.quantization.quantize_dynamic(
            nn.Sequential(linear), {nn.Linear: qconfig}, dtype=torch.qint8
        )[0]
