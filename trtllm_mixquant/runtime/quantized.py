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
from trtllm_mixquant.runtime.compile import compile_exact
from trtllm_mixquant.runtime.loader import CheckpointError, TensorReader
from trtllm_mixquant.runtime.parallel import Shard

log = logging.getLogger(__name__)
_announced: set[str] = set()


def _param(t: torch.Tensor) -> torch.nn.Parameter:
    return torch.nn.Parameter(t, requires_grad=False)


@torch.compiler.disable
def _eager_fake_quantize_nvfp4(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The bit-exact emulation stays eager inside compiled regions: its numerics are the tested ones."""
    return fake_quantize_nvfp4(x, scale, check_values=False)


@torch.compiler.disable
def _eager_quantize_nvfp4(x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return quantize_nvfp4(x, scale, check_values=False)


class Nvfp4EmulatedLinear(torch.nn.Module):
    """y = fakequant_nvfp4(x; input_scale) @ W^T + b, W the dequantized NVFP4 weight, in `dtype`."""

    def __init__(self, weight: torch.Tensor, input_scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = _param(weight)
        self.input_scale = _param(input_scale.float().reshape(()))
        self.bias = None if bias is None else _param(bias.to(weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(_eager_fake_quantize_nvfp4(x, self.input_scale), self.weight, self.bias)


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
        packed, scales = _eager_quantize_nvfp4(x, self.input_scale)
        out = torch._scaled_mm(packed.view(torch.float4_e2m1fn_x2), self.weight.t(), swizzle_block_scales(scales),
                               self.weight_scales, out_dtype=self.dtype)
        out = out * self.alpha.to(self.dtype)
        return out if self.bias is None else out + self.bias


def _fp8_static(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`quantize_fp8_per_tensor` without its checks: one fused elementwise pass once compiled (inside a
    compiled region it fuses into the kernel producing x: the norm or the SiLU-mul)."""
    return (x.float() / scale).to(x.dtype).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)


@functools.cache
def fused_fp8_quantizer():
    """The static FP8 activation quantizer compiled into one kernel (eager it costs as much as the GEMM)."""
    return compile_exact(_fp8_static)


class Fp8Linear(torch.nn.Module):
    """Static FP8 (ModelOpt FP8): y = (q(x) * s_x) @ (q(W) * s_w)^T + b.

    `weight_scale` is one value, or one per output row when projections with different scales are
    fused (the GEMM then scales row-wise, which is exact: every row keeps its own scale).
    """

    def __init__(self, weight, weight_scale, input_scale, bias, dtype):
        super().__init__()
        self.weight = _param(weight)  # float8_e4m3fn [N, K]
        self.weight_scale = _param(weight_scale.float())  # [] or [N]
        self.input_scale = _param(input_scale.float().reshape(()))
        self.bias = None if bias is None else _param(bias.to(dtype))
        self.native = weight.is_cuda and torch.cuda.get_device_capability(weight.device) >= (8, 9)
        if not self.native:
            row_scale = self.weight_scale.reshape(-1, 1) if self.weight_scale.dim() else self.weight_scale
            self.dequantized = _param(dequantize_fp8(weight, row_scale, dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:
            quantize = _fp8_static if torch.compiler.is_compiling() else fused_fp8_quantizer()
            xq = quantize(x, self.input_scale)
            if self.weight_scale.dim() == 0:
                scale_a, scale_b = self.input_scale, self.weight_scale
            else:
                scale_a, scale_b = self.input_scale.expand(x.shape[0], 1).contiguous(), self.weight_scale[None]
            return torch._scaled_mm(xq, self.weight.t(), scale_a, scale_b, bias=self.bias, out_dtype=x.dtype)
        xq = quantize_fp8_per_tensor(x, self.input_scale, check_values=False)
        return F.linear(dequantize_fp8(xq, self.input_scale, x.dtype, check_values=False), self.dequantized, self.bias)


def nvfp4_native_available(device: torch.device) -> bool:
    return (device.type == "cuda" and torch.cuda.get_device_capability(device) >= (10, 0)
            and hasattr(torch, "float4_e2m1fn_x2"))


def _shared(values: list[torch.Tensor], what: str, prefixes: list[str]) -> torch.Tensor:
    """The one value all fused projections must share (they quantize the same input)."""
    if any(not torch.equal(v, values[0]) for v in values[1:]):
        raise CheckpointError(f"{what} differs between {', '.join(prefixes)}, which read the same input; "
                              "re-export the context engine with build.py")
    return values[0]


def make_quantized_kernel(reader: TensorReader, prefixes: list[str], shard: Shard, dtype: torch.dtype,
                          device: torch.device) -> torch.nn.Module:
    """The best kernel on `device` for the projections `prefixes` of a ModelOpt checkpoint, fused, or
    this rank's `shard` of them: weights and NVFP4 block scales cut (on 16-value blocks along K for a
    row-parallel shard), per-tensor scales whole, native NVFP4 scales swizzled per shard."""
    device = torch.device(device)

    def get(name: str) -> list[torch.Tensor]:
        return [reader.get(f"{p}.{name}", shard.part(i)).to(device) for i, p in enumerate(prefixes)]

    bias = torch.cat(get("bias")) if f"{prefixes[0]}.bias" in reader and shard.keeps_bias else None
    weights = get("weight")
    input_scale = _shared(get("input_scale"), "input_scale", prefixes)
    if weights[0].dtype == torch.uint8:
        scales, scales_2 = get("weight_scale"), get("weight_scale_2")
        if nvfp4_native_available(device):
            kernel = Nvfp4NativeLinear(torch.cat(weights), torch.cat(scales),
                                       _shared(scales_2, "weight_scale_2", prefixes), input_scale, bias, dtype)
        else:
            weight = torch.cat([dequantize_nvfp4(w, s, s2, dtype) for w, s, s2 in zip(weights, scales, scales_2)])
            kernel = Nvfp4EmulatedLinear(weight, input_scale, bias)
    elif weights[0].dtype == torch.float8_e4m3fn:
        w_scales = [s.float().reshape(()) for s in get("weight_scale")]
        if all(torch.equal(s, w_scales[0]) for s in w_scales):
            weight_scale = w_scales[0]
        else:
            weight_scale = torch.cat([s.expand(w.shape[0]) for s, w in zip(w_scales, weights)])
        kernel = Fp8Linear(torch.cat(weights), weight_scale, input_scale, bias, dtype)
    else:
        raise CheckpointError(f"{prefixes[0]}.weight has dtype {weights[0].dtype}; a context engine stores NVFP4 "
                              "(uint8) or FP8 (float8_e4m3fn) weights. Rebuild it with build.py.")
    name = type(kernel).__name__ + (" (torch._scaled_mm)" if getattr(kernel, "native", False) else "")
    if name not in _announced:
        _announced.add(name)
        log.info("quantized linear kernel: %s on %s", name, device)
    return kernel
