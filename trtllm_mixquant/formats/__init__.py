"""Quantization formats in pure PyTorch (any device): E2M1, NVFP4, FP8 E4M3, Blackwell scale swizzle."""

from __future__ import annotations

from trtllm_mixquant.formats.checkpoint import compressed_tensors_to_modelopt, modelopt_to_compressed_tensors
from trtllm_mixquant.formats.e2m1 import decode_e2m1, encode_e2m1, pack_e2m1, round_to_e2m1, unpack_e2m1
from trtllm_mixquant.formats.errors import FormatError
from trtllm_mixquant.formats.fp8 import (
    dequantize_fp8,
    fp8_scale_from_amax,
    quantize_fp8_per_tensor,
    quantize_fp8_rowwise,
)
from trtllm_mixquant.formats.nvfp4 import dequantize_nvfp4, fake_quantize_nvfp4, quantize_nvfp4
from trtllm_mixquant.formats.nvfp4_scales import (
    NVFP4_BLOCK,
    ScaleConvention,
    convert_scale_convention,
    nvfp4_per_tensor_scale,
)
from trtllm_mixquant.formats.swizzle import swizzle_block_scales, swizzled_size, unswizzle_block_scales

__all__ = [
    "NVFP4_BLOCK",
    "FormatError",
    "ScaleConvention",
    "compressed_tensors_to_modelopt",
    "convert_scale_convention",
    "decode_e2m1",
    "dequantize_fp8",
    "dequantize_nvfp4",
    "encode_e2m1",
    "fake_quantize_nvfp4",
    "fp8_scale_from_amax",
    "modelopt_to_compressed_tensors",
    "nvfp4_per_tensor_scale",
    "pack_e2m1",
    "quantize_fp8_per_tensor",
    "quantize_fp8_rowwise",
    "quantize_nvfp4",
    "round_to_e2m1",
    "swizzle_block_scales",
    "swizzled_size",
    "unpack_e2m1",
    "unswizzle_block_scales",
]
