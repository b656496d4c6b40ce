"""E2M1 (FP4): rounding, 4-bit codes, and two-codes-per-byte packing.

Code = sign << 3 | index, index 0..7 for magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6. Code 8 ("-0") decodes to 0.
"""

from __future__ import annotations

import torch

from trtllm_mixquant.formats.checks import check_dtype
from trtllm_mixquant.formats.errors import FormatError

__all__ = ["E2M1_MAX", "decode_e2m1", "encode_e2m1", "pack_e2m1", "round_to_e2m1", "unpack_e2m1"]

E2M1_MAX = 6.0
_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def round_to_e2m1(y: torch.Tensor) -> torch.Tensor:
    """Round to the nearest E2M1 value, ties to even, saturating at ±6.

    Args:
        y: float tensor [...] of already-scaled values (finite).
    Returns:
        float32 [...] holding only E2M1 values; negatives that round to zero give -0.0.
    """
    y = y.float().clamp(-E2M1_MAX, E2M1_MAX)
    a = y.abs()
    # E2M1 spacing is 0.5 below 2, 1 in [2, 4), 2 in [4, 6]; powers of two, so y / step is exact
    # and torch.round (half to even) picks the even neighbour at every tie.
    step = torch.where(a < 2.0, 0.5, torch.where(a < 4.0, 1.0, 2.0))
    return torch.round(y / step) * step


def encode_e2m1(y: torch.Tensor) -> torch.Tensor:
    """Round to E2M1 and return the 4-bit codes (sign bit kept for negatives that round to zero).

    Args:
        y: float tensor [...] of already-scaled values (finite).
    Returns:
        uint8 [...] codes in 0..15. A -0.0 input gives code 0, as ModelOpt's `x < 0` sign test does.
    """
    mag = round_to_e2m1(y).abs()
    index = torch.where(mag < 2.0, 2.0 * mag, torch.where(mag < 4.0, mag + 2.0, 0.5 * mag + 4.0))
    return index.to(torch.uint8) | ((y < 0).to(torch.uint8) << 3)


def decode_e2m1(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Map uint8 codes [...] (0..15) to their values [...] in `dtype`; code 8 gives +0."""
    check_dtype(codes, torch.uint8, "E2M1 codes")
    table = torch.tensor(_MAGNITUDES + tuple(-m for m in _MAGNITUDES), dtype=dtype, device=codes.device)
    table[8] = 0.0
    return table[codes.long()]


def pack_e2m1(codes: torch.Tensor) -> torch.Tensor:
    """Pack uint8 codes [..., K] (K even) into bytes [..., K/2]: element 2i low nibble, 2i+1 high nibble."""
    check_dtype(codes, torch.uint8, "E2M1 codes")
    if codes.dim() == 0 or codes.shape[-1] % 2:
        raise FormatError(f"packing needs an even last dimension, got shape {tuple(codes.shape)}; "
                          "pad the tensor to an even K")
    pairs = codes.unflatten(-1, (-1, 2))
    return (pairs[..., 0] & 0x0F) | (pairs[..., 1] << 4)


def unpack_e2m1(packed: torch.Tensor) -> torch.Tensor:
    """Unpack bytes [..., K/2] into uint8 codes [..., K] (low nibble first)."""
    check_dtype(packed, torch.uint8, "packed E2M1 data")
    if packed.dim() == 0:
        raise FormatError("packed E2M1 data must have at least one dimension, got a 0-d tensor")
    return torch.stack((packed & 0x0F, packed >> 4), dim=-1).flatten(-2)
