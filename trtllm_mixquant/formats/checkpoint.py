"""Convert NVFP4 Linear tensors between ModelOpt (TensorRT-LLM) and compressed-tensors (vLLM) checkpoint names.

Per Linear with prefix P:
  ModelOpt:           P.weight uint8 [N, K/2], P.weight_scale e4m3 [N, K/16], P.weight_scale_2 fp32 [],
                      P.input_scale fp32 [] (absent for weight-only)
  compressed-tensors: P.weight_packed,         P.weight_scale (same bytes),   P.weight_global_scale fp32 [1],
                      P.input_global_scale fp32 [1]
Packed data and block scales are copied unchanged; per-tensor scales become their fp32 reciprocals, so a round
trip restores them to within one float32 ulp. Tensors of other modules pass through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from trtllm_mixquant.formats.checks import check_dtype
from trtllm_mixquant.formats.errors import FormatError
from trtllm_mixquant.formats.nvfp4_scales import NVFP4_BLOCK, convert_scale_convention

__all__ = ["compressed_tensors_to_modelopt", "modelopt_to_compressed_tensors"]

# (ModelOpt suffix, compressed-tensors suffix, is a per-tensor scale)
_NAMES = (
    ("weight", "weight_packed", False),
    ("weight_scale", "weight_scale", False),
    ("weight_scale_2", "weight_global_scale", True),
    ("input_scale", "input_global_scale", True),
)


def _check_linear(prefix: str, packed: torch.Tensor, block_scales: torch.Tensor) -> None:
    check_dtype(packed, torch.uint8, f"{prefix} packed weight")
    check_dtype(block_scales, torch.float8_e4m3fn, f"{prefix}.weight_scale")
    if packed.dim() != 2 or block_scales.shape != (packed.shape[0], packed.shape[1] * 2 // NVFP4_BLOCK):
        raise FormatError(f"{prefix}: packed weight {tuple(packed.shape)} and weight_scale "
                          f"{tuple(block_scales.shape)} do not form an NVFP4 Linear ([N, K/2] and [N, K/16])")


def _convert(state_dict: Mapping[str, torch.Tensor], to_ct: bool) -> dict[str, torch.Tensor]:
    src_i, dst_i = (0, 1) if to_ct else (1, 0)
    marker = "." + _NAMES[2][src_i]
    prefixes = [k[: -len(marker)] for k in state_dict if k.endswith(marker)]
    out = dict(state_dict)
    for prefix in prefixes:
        names = [(f"{prefix}.{n[src_i]}", f"{prefix}.{n[dst_i]}", n[2]) for n in _NAMES]
        for src, _, _ in names[:3]:
            if src not in state_dict:
                raise FormatError(f"{src} is missing: {prefix} has {marker[1:]} so it must be a complete NVFP4 "
                                  "Linear (packed weight, weight_scale, per-tensor scale)")
        _check_linear(prefix, state_dict[names[0][0]], state_dict[names[1][0]])
        for src, dst, is_scale in names:
            if src not in state_dict:
                continue
            tensor = out.pop(src)
            if is_scale:
                check_dtype(tensor, torch.float32, src)
                tensor = convert_scale_convention(tensor).reshape([1] if to_ct else [])
            out[dst] = tensor
    return out


def modelopt_to_compressed_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return a new state dict with every ModelOpt NVFP4 Linear (found by `weight_scale_2`) in CT names."""
    return _convert(state_dict, to_ct=True)


def compressed_tensors_to_modelopt(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return a new state dict with every CT NVFP4 Linear (found by `weight_global_scale`) in ModelOpt names."""
    return _convert(state_dict, to_ct=False)
