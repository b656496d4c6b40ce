"""Blackwell block-scale swizzle against the cuBLAS layout formula, padding, and the inverse."""

from __future__ import annotations

import pytest
import torch

from trtllm_mixquant.formats import swizzle_block_scales, swizzled_size, unswizzle_block_scales

SHAPES = [(1, 1), (32, 4), (128, 4), (130, 7), (256, 8), (300, 13)]


def _formula_index(r: int, c: int, cols_pad: int) -> int:
    return ((r // 128) * (cols_pad // 4) + c // 4) * 512 + (r % 32) * 16 + ((r // 32) % 4) * 4 + c % 4


def _scales(rows: int, cols: int) -> torch.Tensor:
    """Distinct non-zero e4m3 bytes (mod 126) so every misplaced entry shows."""
    codes = torch.arange(rows * cols).remainder(126).add(1).to(torch.uint8).reshape(rows, cols)
    return codes.view(torch.float8_e4m3fn)


@pytest.mark.parametrize(("rows", "cols"), SHAPES)
def test_matches_formula_and_pads_with_zeros(rows: int, cols: int) -> None:
    scales = _scales(rows, cols)
    flat = swizzle_block_scales(scales)
    rows_pad, cols_pad = -(-rows // 128) * 128, -(-cols // 4) * 4
    assert flat.dtype == scales.dtype and flat.shape == (rows_pad * cols_pad,) == (swizzled_size(rows, cols),)
    expected = torch.zeros(rows_pad * cols_pad, dtype=torch.uint8)
    for r in range(rows):
        for c in range(cols):
            expected[_formula_index(r, c, cols_pad)] = scales[r, c].view(torch.uint8)
    assert torch.equal(flat.view(torch.uint8), expected)


@pytest.mark.parametrize(("rows", "cols"), SHAPES)
@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.uint8, torch.float32])
def test_round_trip(rows: int, cols: int, dtype: torch.dtype) -> None:
    scales = _scales(rows, cols).view(torch.uint8).to(dtype) if dtype != torch.float8_e4m3fn else _scales(rows, cols)
    back = unswizzle_block_scales(swizzle_block_scales(scales), rows, cols)
    assert back.dtype == dtype and back.shape == (rows, cols) and back.is_contiguous()
    assert torch.equal(back.view(torch.uint8), scales.view(torch.uint8))
