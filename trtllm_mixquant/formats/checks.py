"""Input validation shared by the format functions; every failure raises `FormatError`."""

from __future__ import annotations

import torch

from trtllm_mixquant.formats.errors import FormatError

__all__ = [
    "check_block_dim",
    "check_dtype",
    "check_finite",
    "check_float_input",
    "check_per_tensor_scale",
    "check_scales",
]

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check_dtype(t: torch.Tensor, expected: torch.dtype, name: str) -> None:
    """Raise unless `t` has dtype `expected`."""
    if t.dtype != expected:
        raise FormatError(f"{name} must have dtype {expected}, got {t.dtype}; convert it with .to({expected}) "
                          f"or pass the tensor the checkpoint stores under that name")


def check_float_input(x: torch.Tensor, name: str) -> None:
    """Raise unless `x` is a float32/bfloat16/float16 tensor with at least one dimension."""
    if x.dtype not in FLOAT_DTYPES:
        raise FormatError(f"{name} must be float32, bfloat16 or float16, got {x.dtype}; cast it first")
    if x.dim() == 0:
        raise FormatError(f"{name} must have at least one dimension, got a 0-d tensor")


def check_block_dim(k: int, block: int, name: str) -> None:
    """Raise unless the last dimension `k` is a positive multiple of `block`."""
    if k <= 0 or k % block != 0:
        raise FormatError(f"the last (K) dimension of {name} must be a positive multiple of {block}, got K={k}; "
                          f"pad K to {max(block, -(-k // block) * block)} or leave this layer unquantized")


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise if `x` holds NaN or Inf (one device sync)."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise FormatError(f"{name} holds {bad} NaN/Inf value(s); quantization needs finite input, "
                          f"fix the tensor (or the calibration that produced it) first")


def check_scales(x: torch.Tensor, name: str, allow_zero: bool) -> None:
    """Raise unless every element of `x` is finite and positive (or >= 0 with `allow_zero`); one device sync."""
    xf = x.float()
    ok = torch.isfinite(xf) & ((xf >= 0) if allow_zero else (xf > 0))
    if not bool(ok.all()):
        bad = xf[~ok]
        raise FormatError(f"{name} must be finite and {'non-negative' if allow_zero else 'positive'}, found "
                          f"{bad.numel()} bad value(s) such as {bad[0].item()}; it is corrupt, belongs to another "
                          "tensor, or came from a zero/NaN amax: recompute it from valid data")


def check_per_tensor_scale(scale: torch.Tensor, name: str, check_values: bool) -> torch.Tensor:
    """Validate a one-element float32 scale and return it as a 0-d tensor."""
    if not isinstance(scale, torch.Tensor):
        raise FormatError(f"{name} must be a torch.Tensor, got {type(scale).__name__}; "
                          f"wrap it with torch.tensor(value, dtype=torch.float32)")
    check_dtype(scale, torch.float32, name)
    if scale.numel() != 1:
        raise FormatError(f"{name} must hold exactly one value (a per-tensor scale), got shape {tuple(scale.shape)}")
    scale = scale.reshape(())
    if check_values:
        check_scales(scale, name, allow_zero=False)
    return scale
