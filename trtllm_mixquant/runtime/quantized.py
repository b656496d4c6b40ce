"""Quantized linear kernels of the context engine, built from ModelOpt checkpoint tensors.

| checkpoint | kernel | where |
|---|---|---|
| NVFP4 (uint8 weight) | `Nvfp4NativeLinear`: `torch._scaled_mm` on float4_e2m1fn_x2, swizzled scales | sm_100+ (Blackwell). Written to the cuBLAS layout, not run by us: no Blackwell GPU here |
| NVFP4 | `Nvfp4EmulatedLinear`: dequantized weights, activations fake-quantized per 16 | any device; bit-exact numerics, slower than BF16 |
| FP8 (float8 weight) | `Fp8Linear`: `torch._scaled_mm` with the static per-tensor scales | sm_89+; emulated elsewhere |
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

from trtllm_mixquant.formats import (
    dequantize_fp8,
    dequantize_nvfp4,
    fake_quantize_nvfp4,
    quantize_fp8_per_tensor,
    quantize_nvfp4,
    swizzle_block_scales,
)
from trtllm_mixquant.runtime.loader import CheckpointError, TensorReader

log = logging.getLogger(__name__)
_announced: set[str] = set()


def _param(t: torch.Tensor) -> torch.nn.Parameter:
    return torch.nn.Parameter(t, requires_grad=False)


class Nvfp4EmulatedLinear(torch.nn.Module):
    """y = fakequant_nvfp4(x; input_scale) @ dequant(W)^T + b, in `dtype`."""

    def __init__(self, packed, block_scales, weight_scale_2, input_scale, bias, dtype):
        super().__init__()
        self.weight = _param(dequantize_nvfp4(packed, block_scales, weight_scale_2, dtype))
        self.input_scale = _param(input_scale.float().reshape(()))
        self.bias = None if bias is None else _param(bias.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(fake_quantize_nvfp4(x, self.input_scale, check_values=False), self.weight, self.bias)


class Nvfp4NativeLinear(torch.nn.Module):
    """W4A4 on Blackwell tensor cores: both operands NVFP4, fp32 accumulate, alpha in the epilogue."""

    def __init__(self, packed, block_scales, weight_scale_2, input_scale, bias, dtype):
        super().__init__()
        n, k = packed.shape[0], packed.shape[1] * 2
        if k % 32 or n % 16:
            raise CheckpointError(f"native NVFP4 GEMM needs K % 32 == 0 and N % 16 == 0 (got K={k}, N={n})")
        self.weight = _param(packed.view(torch.float4_e2m1fn_x2))
        self.weight_scales = _param(swizzle_block_scales(block_scales))
        self.input_scale = _param(input_scale.float().reshape(()))
        self.alpha = _param((input_scale.float() * weight_scale_2.float()).reshape(()))
        self.bias = None if bias is None else _param(bias.to(dtype))
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed, scales = quantize_nvfp4(x, self.input_scale, check_values=False)
        out = torch._scaled_mm(packed.view(torch.float4_e2m1fn_x2), self.weight.t(), swizzle_block_scales(scales),
                               self.weight_scales, out_dtype=self.dtype)
        out = out * self.alpha.to(self.dtype)
        return out if self.bias is None else out + self.bias


def _fp8_static(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`quantize_fp8_per_tensor` without its checks: one fused elementwise pass once compiled."""
    return (x.float() / scale).to(x.dtype).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)


@functools.cache
def fused_fp8_quantizer():
    """The static FP8 activation quantizer compiled into one kernel (eager it costs as much as the GEMM)."""
    return torch.compile(_fp8_static, dynamic=True)


class Fp8Linear(torch.nn.Module):
    """Per-tensor static FP8 (ModelOpt FP8): y = (q(x) * s_x) @ (q(W) * s_w)^T + b."""

    def __init__(self, weight, weight_scale, input_scale, bias, dtype):
        super().__init__()
        self.weight = _param(weight)  # float8_e4m3fn [N, K]
        self.weight_scale = _param(weight_scale.float().reshape(()))
        self.input_scale = _param(input_scale.float().reshape(()))
        self.bias = None if bias is None else _param(bias.to(dtype))
        self.native = weight.is_cuda and torch.cuda.get_device_capability(weight.device) >= (8, 9)
        if not self.native:
            self.dequantized = _param(dequantize_fp8(weight, self.weight_scale, dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:
            xq = fused_fp8_quantizer()(x, self.input_scale)
            return torch._scaled_mm(xq, self.weight.t(), self.input_scale, self.weight_scale, bias=self.bias,
                                    out_dtype=x.dtype)
        xq = quantize_fp8_per_tensor(x, self.input_scale, check_values=False)
        return F.linear(dequantize_fp8(xq, self.input_scale, x.dtype, check_values=False), self.dequantized, self.bias)


def nvfp4_native_available(device: torch.device) -> bool:
    return (device.type == "cuda" and torch.cuda.get_device_capability(device) >= (10, 0)
            and hasattr(torch, "float4_e2m1fn_x2"))


def make_quantized_kernel(reader: TensorReader, prefix: str, dtype: torch.dtype,
                          device: torch.device) -> torch.nn.Module:
    """The best kernel for the quantized projection `prefix` of a ModelOpt checkpoint on `device`."""
    device = torch.device(device)

    def get(name):
        return reader.get(f"{prefix}.{name}").to(device)

    bias = get("bias") if f"{prefix}.bias" in reader else None
    weight = get("weight")
    if weight.dtype == torch.uint8:
        native = nvfp4_native_available(device)
        cls = Nvfp4NativeLinear if native else Nvfp4EmulatedLinear
        kernel = cls(weight, get("weight_scale"), get("weight_scale_2"), get("input_scale"), bias, dtype)
    elif weight.dtype == torch.float8_e4m3fn:
        kernel = Fp8Linear(weight, get("weight_scale"), get("input_scale"), bias, dtype)
    else:
        raise CheckpointError(f"{prefix}.weight has dtype {weight.dtype}; a context engine stores NVFP4 (uint8) "
                              "or FP8 (float8_e4m3fn) weights. Rebuild it with build.py.")
    name = type(kernel).__name__ + (" (torch._scaled_mm)" if getattr(kernel, "native", False) else "")
    if name not in _announced:
        _announced.add(name)
        log.info("quantized linear kernel: %s on %s", name, device)
    return kernel
