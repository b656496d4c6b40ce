"""NVFP4 scales: per-tensor scale in both checkpoint conventions, and the E4M3 per-block scales.

Two conventions express the same per-tensor factor:
  - "modelopt" (dequantize direction, TensorRT-LLM): `weight_scale_2 = amax / (6 * 448)`, `input_scale` alike;
    x ≈ q * float(block_scale) * weight_scale_2.
  - "compressed_tensors" (quantize direction, vLLM / llm-compressor): `global_scale = 448 * 6 / amax`;
    x ≈ q * float(block_scale) / global_scale.
Each convention keeps its library's operation order so results are bit-exact with that library.
"""

from __future__ import annotations

from typing import Literal

import torch

from trtllm_mixquant.formats.checks import check_scales
from trtllm_mixquant.formats.e2m1 import E2M1_MAX
from trtllm_mixquant.formats.errors import FormatError
from trtllm_mixquant.formats.exact import div_exact
from trtllm_mixquant.formats.fp8 import E4M3_MAX

__all__ = [
    "NVFP4_BLOCK",
    "ScaleConvention",
    "check_convention",
    "convert_scale_convention",
    "nvfp4_block_scales",
    "nvfp4_effective_scales",
    "nvfp4_per_tensor_scale",
]

ScaleConvention = Literal["modelopt", "compressed_tensors"]
NVFP4_BLOCK = 16
# Smallest positive E4M3 (subnormal 2^-9): ModelOpt clamps block scales here so they never underflow to 0.
_MIN_BLOCK_SCALE = 2.0**-9
_CONVENTIONS = ("modelopt", "compressed_tensors")


def check_convention(convention: str) -> None:
    """Raise unless `convention` names a supported scale convention."""
    if convention not in _CONVENTIONS:
        raise FormatError(f"convention must be one of {_CONVENTIONS}, got {convention!r}")


def nvfp4_per_tensor_scale(amax: torch.Tensor, convention: ScaleConvention = "modelopt") -> torch.Tensor:
    """Per-tensor NVFP4 scale from a calibrated amax.

    Args:
        amax: one-element tensor (any float dtype), the tensor's (or activation's) absolute maximum.
        convention: "modelopt" returns `amax / 2688` (`weight_scale_2` / `input_scale`); a zero amax
            becomes 6 first, as ModelOpt's export does for never-activated quantizers.
            "compressed_tensors" returns `2688 / amax` (`weight_global_scale` / `input_global_scale`),
            as compressed-tensors' `generate_gparam`: amax clamped to the smallest normal float32, an
            overflowing result replaced by 1.0 (a NaN amax raises here; there it becomes 1.0).
    Returns:
        float32 0-d tensor.
    """
    check_convention(convention)
    if amax.numel() != 1:
        raise FormatError(f"amax must hold one value (per-tensor), got shape {tuple(amax.shape)}; "
                          "reduce it with x.abs().amax() first")
    amax = amax.reshape(()).float()
    check_scales(amax, "amax", allow_zero=True)
    if convention == "modelopt":
        return div_exact(torch.where(amax == 0, E2M1_MAX, amax), E2M1_MAX * E4M3_MAX)
    # `constant / tensor` is reciprocal(tensor) * constant in PyTorch on every device, as in generate_gparam.
    gs = (E4M3_MAX * E2M1_MAX) / amax.clamp(min=torch.finfo(torch.float32).tiny)
    return torch.nan_to_num(gs, posinf=1.0)


def convert_scale_convention(scale: torch.Tensor) -> torch.Tensor:
    """ModelOpt `weight_scale_2`/`input_scale` ↔ compressed-tensors `*_global_scale`: the fp32 reciprocal.

    The map is its own inverse up to one float32 ulp (1/(1/s) != s for ~14% of values).
    """
    return 1.0 / scale.float()


def nvfp4_block_scales(
    block_amax: torch.Tensor, per_tensor_scale: torch.Tensor, convention: ScaleConvention
) -> torch.Tensor:
    """E4M3 block scales [..., G] from block amaxes [..., G] (float32) and a 0-d float32 per-tensor scale.

    Follows ModelOpt's export: an all-zero block gets scale 1.0, and scales are clamped to [2^-9, 448]
    before the float8 cast (never underflow to 0, never overflow to NaN on GPU).
    """
    if convention == "modelopt":
        scale = block_amax / (E2M1_MAX * per_tensor_scale)
    else:
        scale = div_exact(block_amax, E2M1_MAX) * per_tensor_scale
    scale = torch.where(scale == 0, 1.0, scale)
    return scale.clamp(_MIN_BLOCK_SCALE, E4M3_MAX).to(torch.float8_e4m3fn)


def nvfp4_effective_scales(
    block_scales: torch.Tensor, per_tensor_scale: torch.Tensor, convention: ScaleConvention
) -> torch.Tensor:
    """float32 [..., G] factor with x ≈ q * factor, from E4M3 block scales [..., G] and the per-tensor scale."""
    if convention == "modelopt":
        return block_scales.float() * per_tensor_scale
    return block_scales.float() / per_tensor_scale
