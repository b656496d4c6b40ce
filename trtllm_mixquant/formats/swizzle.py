"""Blackwell block-scale layout (cuBLAS "1D block scaling factors layout") for NVFP4 GEMMs.

A [rows, cols] scale matrix is zero-padded to rows % 128 == 0 and cols % 4 == 0, then entry (r, c) goes to
flat index ((r // 128) * (cols_pad / 4) + c // 4) * 512 + (r % 32) * 16 + ((r // 32) % 4) * 4 + c % 4.
"""

from __future__ import annotations

import torch

from trtllm_mixquant.formats.errors import FormatError

__all__ = ["swizzle_block_scales", "swizzled_size", "unswizzle_block_scales"]


def _padded(rows: int, cols: int) -> tuple[int, int]:
    return -(-rows // 128) * 128, -(-cols // 4) * 4


def swizzled_size(rows: int, cols: int) -> int:
    """Number of elements of the swizzled layout of a [rows, cols] scale matrix (after padding)."""
    rows_pad, cols_pad = _padded(rows, cols)
    return rows_pad * cols_pad


def swizzle_block_scales(scales: torch.Tensor) -> torch.Tensor:
    """[rows, cols] (any dtype, e.g. float8_e4m3fn) → flat [rows_pad * cols_pad] in the swizzled layout."""
    if scales.dim() != 2:
        raise FormatError(f"block scales must be 2-D [rows, K/16], got shape {tuple(scales.shape)}; "
                          "flatten the leading dims first")
    rows, cols = scales.shape
    rows_pad, cols_pad = _padded(rows, cols)
    padded = scales.new_zeros((rows_pad, cols_pad))
    padded[:rows, :cols] = scales
    # r = (rb, r4, r32) = rb*128 + r4*32 + r32; c = (cb, c4) = cb*4 + c4 → order (rb, cb, r32, r4, c4).
    tiles = padded.view(rows_pad // 128, 4, 32, cols_pad // 4, 4)
    return tiles.permute(0, 3, 2, 1, 4).reshape(-1)


def unswizzle_block_scales(swizzled: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Inverse of `swizzle_block_scales`: flat swizzled [rows_pad * cols_pad] → [rows, cols]."""
    if swizzled.dim() != 1 or swizzled.numel() != swizzled_size(rows, cols):
        raise FormatError(f"swizzled scales must be 1-D with {swizzled_size(rows, cols)} elements for "
                          f"rows={rows}, cols={cols} (padded to multiples of 128 and 4), got shape "
                          f"{tuple(swizzled.shape)}; pass the original rows and cols")
    rows_pad, cols_pad = _padded(rows, cols)
    tiles = swizzled.view(rows_pad // 128, cols_pad // 4, 32, 4, 4)
    return tiles.permute(0, 3, 2, 1, 4).reshape(rows_pad, cols_pad)[:rows, :cols].contiguous()
