"""NVFP4 behaviour on its own: shapes, error bounds, special blocks, fake quant, both scale conventions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from trtllm_mixquant.formats import (
    convert_scale_convention,
    dequantize_nvfp4,
    fake_quantize_nvfp4,
    nvfp4_per_tensor_scale,
    quantize_nvfp4,
    unpack_e2m1,
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
SHAPES = [(1, 32), (7, 64), (2, 3, 96), (64, 256)]
CONVENTIONS = ["modelopt", "compressed_tensors"]


def _per_tensor(x: torch.Tensor, convention: str) -> torch.Tensor:
    return nvfp4_per_tensor_scale(x.float().abs().amax(), convention)


def _factor(block_scales: torch.Tensor, scale: torch.Tensor, convention: str) -> torch.Tensor:
    return block_scales.float() * scale if convention == "modelopt" else block_scales.float() / scale


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_error_bound(shape: tuple[int, ...], dtype: torch.dtype, convention: str,
                                make_tensor: Callable[..., torch.Tensor]) -> None:
    x = make_tensor(shape, dtype, "student_t")
    scale = _per_tensor(x, convention)
    packed, block_scales = quantize_nvfp4(x, scale, convention)
    assert packed.dtype == torch.uint8 and packed.shape == (*shape[:-1], shape[-1] // 2)
    assert block_scales.dtype == torch.float8_e4m3fn and block_scales.shape == (*shape[:-1], shape[-1] // 16)
    deq = dequantize_nvfp4(packed, block_scales, scale, dtype, convention)
    assert deq.dtype == dtype and deq.shape == x.shape
    factor = _factor(block_scales, scale, convention).unsqueeze(-1)
    err = (deq.float() - x.float()).unflatten(-1, (-1, 16)).abs()
    # E2M1 steps are <= 2, so rounding moves a scaled value by at most 1 (x factor); output dtype adds a little.
    assert (err <= factor * 1.0 + x.float().abs().amax() * 2**-7).all()
    # Each block's amax maps to ~6: only the E4M3 block-scale rounding (half-ulp 1/16) perturbs it.
    amax = x.float().unflatten(-1, (-1, 16)).abs().amax(-1)
    amax_back = deq.float().unflatten(-1, (-1, 16)).abs().amax(-1)
    assert ((amax_back - amax).abs() <= amax / 15 + 1e-30).all()


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dist", ["normal", "student_t", "zero_blocks", "tiny_blocks"])
def test_fake_quantize_equals_dequantize_of_quantize(dist: str, dtype: torch.dtype, convention: str,
                                                     make_tensor: Callable[..., torch.Tensor]) -> None:
    x = make_tensor((33, 128), dtype, dist)
    # A static activation scale calibrated on smaller data: some blocks exceed it and saturate.
    scale = _per_tensor(x * 0.25, convention)
    packed, block_scales = quantize_nvfp4(x, scale, convention)
    expected = dequantize_nvfp4(packed, block_scales, scale, dtype, convention)
    got = fake_quantize_nvfp4(x, scale, convention)
    assert got.dtype == dtype
    assert torch.equal(got, expected)
    assert torch.equal(fake_quantize_nvfp4(x, scale, convention, check_values=False), expected)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_zero_tiny_and_negative_tiny_blocks(convention: str) -> None:
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    x[0, :16] = 0.0
    x[1, 16:32] = torch.linspace(-1, 1, 16) * 1e-6 * x.abs().max()  # block scale ~448e-6 < 2^-10: would round to 0
    x[2, 32:48] = -1e-12
    scale = _per_tensor(x, convention)
    packed, block_scales = quantize_nvfp4(x, scale, convention)
    bs = block_scales.float()
    assert bs[0, 0] == 1.0                       # zero block: scale 1.0, as ModelOpt stores it
    assert bs[1, 1] == 2.0**-9 and bs[2, 2] == 2.0**-9  # clamped at the smallest E4M3 instead of underflowing
    codes = unpack_e2m1(packed)
    assert (codes[0, :16] == 0).all()
    assert (codes[2, 32:48] == 8).all()          # negative values rounding to zero keep the sign bit ("-0")
    deq = dequantize_nvfp4(packed, block_scales, scale, torch.float32, convention)
    assert (deq[0, :16] == 0).all() and (deq[2, 32:48] == 0).all()
    tiny = x[1, 16:32]
    assert (deq[1, 16:32] != 0).any()            # the tiny block survives (it would be zeroed by underflow)
    assert ((deq[1, 16:32] - tiny).abs() <= tiny.abs().max()).all()


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_block_scale_saturates_at_448(convention: str) -> None:
    x = torch.full((1, 16), 10.0)
    scale = nvfp4_per_tensor_scale(torch.tensor(1.0), convention)  # calibrated amax 1, data amax 10
    packed, block_scales = quantize_nvfp4(x, scale, convention)
    assert block_scales.float().item() == 448.0
    assert (unpack_e2m1(packed) == 7).all()      # every value saturates to E2M1 6
    assert torch.allclose(dequantize_nvfp4(packed, block_scales, scale, torch.float32, convention),
                          torch.full((1, 16), 1.0), rtol=1e-6)


def test_leading_dims_match_rows() -> None:
    x = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(3))
    scale = _per_tensor(x, "modelopt")
    packed, block_scales = quantize_nvfp4(x, scale)
    packed2, block_scales2 = quantize_nvfp4(x.reshape(6, 64), scale)
    assert torch.equal(packed.reshape(6, 32), packed2)
    assert torch.equal(block_scales.reshape(6, 4).view(torch.uint8), block_scales2.view(torch.uint8))


def test_per_tensor_scale_is_a_correctly_rounded_division() -> None:
    # float64 quotient rounded once to float32 is the correctly rounded float32 quotient; CUDA would give
    # amax * fl(1/2688) for a plain `amax / 2688.0` (covered on GPU by test_formats_cuda.py).
    for amax in torch.rand(500, generator=torch.Generator().manual_seed(5)) * 100:
        assert nvfp4_per_tensor_scale(amax).item() == (amax.double() / 2688).float().item()


def test_per_tensor_scale_conventions() -> None:
    amax = torch.tensor(3.7, dtype=torch.bfloat16)
    assert nvfp4_per_tensor_scale(amax).item() == (amax.float() / 2688.0).item()
    assert nvfp4_per_tensor_scale(amax, "compressed_tensors").item() == (2688.0 / amax.float()).item()
    assert nvfp4_per_tensor_scale(amax).dtype == torch.float32 and nvfp4_per_tensor_scale(amax).dim() == 0
    zero = torch.tensor(0.0)
    assert nvfp4_per_tensor_scale(zero).item() == pytest.approx(1 / 448)  # ModelOpt: amax 0 -> maxbound 6
    assert nvfp4_per_tensor_scale(zero, "compressed_tensors").item() == 1.0  # CT: inf -> 1.0


def test_convert_scale_convention_round_trip_within_one_ulp() -> None:
    s = torch.rand(10000, generator=torch.Generator().manual_seed(4)) * 1e-3 + 1e-6
    back = convert_scale_convention(convert_scale_convention(s))
    assert torch.equal(convert_scale_convention(s), 1.0 / s)
    ulp = torch.nextafter(s, torch.tensor(1.0)) - s
    assert ((back - s).abs() <= ulp).all()
    assert (back != s).any()  # documents why the conversion is not called bit-exact


def test_conventions_are_not_interchangeable_at_rounding_boundaries(make_tensor: Callable[..., torch.Tensor]) -> None:
    # Why both operation orders exist: with the reciprocal per-tensor scale, `amax / (6 * w2)` and
    # `(amax / 6) * gs` land on different sides of an E4M3 rounding midpoint for some blocks.
    x = make_tensor((64, 256), torch.float32, "scale_boundaries")
    _, mo_scales = quantize_nvfp4(x, _per_tensor(x, "modelopt"), "modelopt")
    _, ct_scales = quantize_nvfp4(x, _per_tensor(x, "compressed_tensors"), "compressed_tensors")
    differ = mo_scales.view(torch.uint8) != ct_scales.view(torch.uint8)
    assert 0 < int(differ.sum()) < differ.numel() // 4
