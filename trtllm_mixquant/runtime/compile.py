"""`torch.compile` as the runtime uses it: dynamic shapes, and casts rounded exactly as eager rounds them."""

from __future__ import annotations

import torch

# By default inductor keeps a fused kernel's intermediates in fp32 and skips explicit casts to bf16 in
# between: `(x / s).to(bf16).to(float8)` then rounds once instead of twice, and on an H100 2.9% of
# FP8 activation codes differed from the eager (and ModelOpt) ones. This option keeps every cast.
INDUCTOR_OPTIONS = {"emulate_precision_casts": True}


def compile_exact(fn):
    """`fn` compiled for any input sizes, numerically the eager `fn` up to reduction order."""
    return torch.compile(fn, dynamic=True, options=INDUCTOR_OPTIONS)
