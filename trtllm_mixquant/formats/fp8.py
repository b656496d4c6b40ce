"""FP8 (E4M3) with a per-tensor static scale or one scale per row (per-token activations, per-channel weights).

Dequantize direction, as ModelOpt exports it: x ≈ float(q) * scale, scale = amax / 448. Values are clamped to
±448 before every float8 cast (the GPU cast does not saturate).
"""

from __future__ import annotations

import torch

from trtllm_mixquant.formats.checks import (
    check_dtype,
    check_finite,
    check_float_input,
    check_per_tensor_scale,
    check_scales,
)
from trtllm_mixquant.formats.errors import FormatError
from trtllm_mixquant.formats.exact import div_exact

__all__ = ["E4M3_MAX", "dequantize_fp8", "fp8_scale_from_amax", "quantize_fp8_per_tensor", "quantize_fp8_rowwise"]

E4M3_MAX = 448.0


def _scale_from_amax(amax: torch.Tensor) -> torch.Tensor:
    amax = amax.float()
    return div_exact(torch.where(amax == 0, E4M3_MAX, amax), E4M3_MAX)


def fp8_scale_from_amax(amax: torch.Tensor) -> torch.Tensor:
    """float32 scale(s) `amax / 448`, same shape as `amax` (finite, >= 0).

    A zero amax becomes 448 first (scale 1.0), as ModelOpt's export does for never-activated quantizers,
    so all-zero rows (padding tokens) quantize to zero instead of NaN.
    """
    check_scales(amax, "amax", allow_zero=True)
    return _scale_from_amax(amax)


def _to_fp8(y: torch.Tensor) -> torch.Tensor:
    return y.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def quantize_fp8_per_tensor(x: torch.Tensor, scale: torch.Tensor, *, check_values: bool = True) -> torch.Tensor:
    """Quantize x [...] with a static float32 one-element scale; returns float8_e4m3fn [...].

    The float32 quotient is rounded to x.dtype before the float8 cast, exactly as ModelOpt's FP8 export
    computes `(weight / weight_scale).to(float8)` on CPU for a bfloat16/float16 weight (a double rounding that
    differs from a direct float32 → float8 cast for a few percent of bfloat16 values). An export run on CUDA
    differs again: there PyTorch rounds the 0-d float32 scale to bfloat16 before dividing.
    """
    check_float_input(x, "x")
    scale = check_per_tensor_scale(scale, "scale", check_values).to(x.device)
    if check_values:
        check_finite(x, "x")
    return _to_fp8((x.float() / scale).to(x.dtype))


def quantize_fp8_rowwise(x: torch.Tensor, *, check_values: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize x [..., K] with one dynamic scale per row (per-token activations or per-channel weights).

    Returns (float8_e4m3fn [..., K], float32 scales [..., 1]); the float32 quotient is cast directly, as
    ModelOpt's per-channel export does.
    """
    check_float_input(x, "x")
    if check_values:
        check_finite(x, "x")
    scales = _scale_from_amax(x.abs().amax(dim=-1, keepdim=True))
    return _to_fp8(x.float() / scales), scales


def dequantize_fp8(
    q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.bfloat16, *, check_values: bool = True
) -> torch.Tensor:
    """`(float(q) * scale).to(dtype)` for q float8_e4m3fn [..., K] and float32 scale [] / [1] / [..., 1]."""
    check_dtype(q, torch.float8_e4m3fn, "FP8 data")
    check_dtype(scale, torch.float32, "FP8 scale")
    if scale.numel() != 1 and (scale.dim() != q.dim() or scale.shape[:-1] != q.shape[:-1] or scale.shape[-1] != 1):
        raise FormatError(f"FP8 scale shape {tuple(scale.shape)} does not fit data {tuple(q.shape)}: use one "
                          "value (per-tensor) or [..., 1] with the data's leading dims (one per row); a ModelOpt "
                          "per-channel weight_scale [N] needs .unsqueeze(-1)")
    if check_values:
        check_scales(scale, "FP8 scale", allow_zero=False)
    return (q.float() * scale.to(q.device)).to(dtype)
