"""Triton helpers shared by the kernels."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

TORCH_TO_TRITON = {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16, torch.float32: tl.float32}


@triton.jit
def half_dot(a, b, INTERPRETED: tl.constexpr):
    """a @ b of bf16/fp16 tiles with fp32 sums. Triton's interpreter has no bf16 dot, so there the same
    exact products of the stored values are summed by an fp32 dot."""
    if INTERPRETED:
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    return tl.dot(a, b)
