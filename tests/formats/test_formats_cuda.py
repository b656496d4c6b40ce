"""CUDA results equal CPU results bit for bit (GPU float8 casts do not saturate, so clamping must hold)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from trtllm_mixquant.formats import (
    dequantize_fp8,
    dequantize_nvfp4,
    fake_quantize_nvfp4,
    fp8_scale_from_amax,
    nvfp4_per_tensor_scale,
    quantize_fp8_per_tensor,
    quantize_fp8_rowwise,
    quantize_nvfp4,
    swizzle_block_scales,
    unswizzle_block_scales,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.cpu().reshape(-1).contiguous().view(torch.uint8)


def _assert_same(cpu: torch.Tensor, gpu: torch.Tensor) -> None:
    assert gpu.is_cuda and cpu.dtype == gpu.dtype and cpu.shape == gpu.shape
    assert torch.equal(_bits(cpu), _bits(gpu))


@pytest.mark.parametrize("convention", ["modelopt", "compressed_tensors"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("dist", ["normal", "student_t", "zero_blocks", "tiny_blocks", "scale_boundaries"])
@pytest.mark.parametrize("amax_factor", [1.0, 0.1])  # 0.1: a static scale below the data, block scales hit 448
def test_nvfp4_cuda_equals_cpu(dist: str, dtype: torch.dtype, convention: str, amax_factor: float,
                               make_tensor: Callable) -> None:
    x = make_tensor((256, 512), dtype, dist)
    amax = x.float().abs().amax() * amax_factor
    scale = nvfp4_per_tensor_scale(amax, convention)
    _assert_same(scale, nvfp4_per_tensor_scale(amax.cuda(), convention))
    packed, block_scales = quantize_nvfp4(x, scale, convention)
    packed_gpu, block_scales_gpu = quantize_nvfp4(x.cuda(), scale.cuda(), convention)
    _assert_same(packed, packed_gpu)
    _assert_same(block_scales, block_scales_gpu)
    _assert_same(dequantize_nvfp4(packed, block_scales, scale, dtype, convention),
                 dequantize_nvfp4(packed_gpu, block_scales_gpu, scale.cuda(), dtype, convention))
    _assert_same(fake_quantize_nvfp4(x, scale, convention),
                 fake_quantize_nvfp4(x.cuda(), scale.cuda(), convention, check_values=False))
    _assert_same(fake_quantize_nvfp4(x, scale, convention),
                 fake_quantize_nvfp4(x.cuda(), scale, convention))  # a CPU-held scale gives the same bits
    _assert_same(swizzle_block_scales(block_scales), swizzle_block_scales(block_scales_gpu))
    _assert_same(block_scales, unswizzle_block_scales(swizzle_block_scales(block_scales_gpu), 256, 32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fp8_cuda_equals_cpu(dtype: torch.dtype, make_tensor: Callable) -> None:
    x = make_tensor((64, 256), dtype, "student_t")
    scale = fp8_scale_from_amax(x.float().abs().amax() * 0.5)  # half the amax: values saturate at ±448
    q = quantize_fp8_per_tensor(x, scale)
    _assert_same(q, quantize_fp8_per_tensor(x.cuda(), scale.cuda()))
    _assert_same(q, quantize_fp8_per_tensor(x.cuda(), scale))  # a CPU-held scale gives the same bits
    _assert_same(dequantize_fp8(q, scale, dtype), dequantize_fp8(q.cuda(), scale.cuda(), dtype))
    _assert_same(scale, fp8_scale_from_amax(x.cuda().float().abs().amax() * 0.5))
    q_rows, scales = quantize_fp8_rowwise(x)
    q_rows_gpu, scales_gpu = quantize_fp8_rowwise(x.cuda())
    _assert_same(q_rows, q_rows_gpu)
    _assert_same(scales, scales_gpu)
