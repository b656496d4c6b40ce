"""Triton helpers shared by the kernels."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def half_dot(a, b, INTERPRETED: tl.constexpr):
    """a @ b of bf16/fp16 tiles with fp32 sums. Triton's interpreter has no bf16 dot, so there the same
    exact products of the stored values are summed by an fp32 dot."""
    if INTERPRETED:
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    return tl.dot(a, b)
