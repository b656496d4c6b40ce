"""NVFP4 quantize / dequantize / fake-quantize: E2M1 data, E4M3 scale per 16 elements of K, fp32 per-tensor scale.

Bit-exact with ModelOpt 0.47's HF export (convention "modelopt") and with compressed-tensors 0.20's NVFP4
compressor (convention "compressed_tensors"), except where the libraries' policies differ: zero blocks and
underflowing blocks follow ModelOpt in both conventions (scale 1.0; scale clamped to 2^-9 instead of
compressed-tensors' 0.125, which zeroes an underflowing block). Results are identical on CPU and CUDA.
"""

from __future__ import annotations

import torch

from trtllm_mixquant.formats.checks import (
    check_block_dim,
    check_dtype,
    check_finite,
    check_float_input,
    check_per_tensor_scale,
    check_scales,
)
from trtllm_mixquant.formats.e2m1 import decode_e2m1, encode_e2m1, pack_e2m1, round_to_e2m1, unpack_e2m1
from trtllm_mixquant.formats.errors import FormatError
from trtllm_mixquant.formats.nvfp4_scales import (
    NVFP4_BLOCK,
    ScaleConvention,
    check_convention,
    nvfp4_block_scales,
    nvfp4_effective_scales,
)

__all__ = ["dequantize_nvfp4", "fake_quantize_nvfp4", "quantize_nvfp4"]


def _scale_blocks(
    x: torch.Tensor, per_tensor_scale: torch.Tensor, convention: ScaleConvention, check_values: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate x [..., K]; return (x / factor as float32 [..., K/16, 16], factor [..., K/16], block scales e4m3)."""
    check_convention(convention)
    check_float_input(x, "x")
    check_block_dim(x.shape[-1], NVFP4_BLOCK, "x")
    scale = check_per_tensor_scale(per_tensor_scale, "per_tensor_scale", check_values).to(x.device)
    if check_values:
        check_finite(x, "x")
    blocks = x.float().unflatten(-1, (-1, NVFP4_BLOCK))
    block_scales = nvfp4_block_scales(blocks.abs().amax(dim=-1), scale, convention)
    factor = nvfp4_effective_scales(block_scales, scale, convention)
    return blocks / factor.unsqueeze(-1), factor, block_scales


def quantize_nvfp4(
    x: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    convention: ScaleConvention = "modelopt",
    *,
    check_values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize x [..., K] (K % 16 == 0) to NVFP4.

    Args:
        x: float32/bfloat16/float16 tensor [..., K].
        per_tensor_scale: float32 one-element tensor in `convention` (see `nvfp4_per_tensor_scale`).
        check_values: scan x for NaN/Inf and the scale for <= 0 (a device sync each).
    Returns:
        (packed uint8 [..., K/2], block scales float8_e4m3fn [..., K/16]).
    """
    y, _, block_scales = _scale_blocks(x, per_tensor_scale, convention, check_values)
    return pack_e2m1(encode_e2m1(y).flatten(-2)), block_scales


def dequantize_nvfp4(
    packed: torch.Tensor,
    block_scales: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    dtype: torch.dtype = torch.bfloat16,
    convention: ScaleConvention = "modelopt",
    *,
    check_values: bool = True,
) -> torch.Tensor:
    """Dequantize packed uint8 [..., K/2] with block scales float8_e4m3fn [..., K/16] to `dtype` [..., K].

    Computes `(value * factor).to(dtype)` in float32 with factor = block_scale * weight_scale_2 ("modelopt")
    or block_scale / global_scale ("compressed_tensors"), as the libraries do.
    """
    check_convention(convention)
    check_dtype(packed, torch.uint8, "packed NVFP4 data")
    check_dtype(block_scales, torch.float8_e4m3fn, "NVFP4 block scales")
    if (
        packed.dim() == 0
        or packed.shape[:-1] != block_scales.shape[:-1]
        or packed.shape[-1] * 2 != block_scales.shape[-1] * NVFP4_BLOCK
    ):
        raise FormatError(f"packed data {tuple(packed.shape)} and block scales {tuple(block_scales.shape)} do not "
                          f"match: expected packed [..., K/2] with scales [..., K/{NVFP4_BLOCK}] and equal leading "
                          "dims; check that both come from the same tensor")
    scale = check_per_tensor_scale(per_tensor_scale, "per_tensor_scale", check_values).to(packed.device)
    if check_values:
        check_scales(block_scales, "NVFP4 block scales", allow_zero=True)
    values = decode_e2m1(unpack_e2m1(packed)).unflatten(-1, (-1, NVFP4_BLOCK))
    factor = nvfp4_effective_scales(block_scales, scale, convention)
    return (values * factor.unsqueeze(-1)).flatten(-2).to(dtype)


def fake_quantize_nvfp4(
    x: torch.Tensor,
    per_tensor_scale: torch.Tensor,
    convention: ScaleConvention = "modelopt",
    *,
    check_values: bool = True,
) -> torch.Tensor:
    """Quantize-dequantize x [..., K] with dynamic block scales and a static per-tensor scale (W4A4 emulation).

    Equal bit for bit to `dequantize_nvfp4(*quantize_nvfp4(x, s), s, x.dtype)` without packing.
    Returns x.dtype [..., K]. Pass check_values=False in hot paths (no device sync); NaN then propagates.
    """
    y, factor, _ = _scale_blocks(x, per_tensor_scale, convention, check_values)
    return (round_to_e2m1(y) * factor.unsqueeze(-1)).flatten(-2).to(x.dtype)
