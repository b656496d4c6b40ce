"""Devices and dtypes as users give them ("auto", "cpu", "cuda:1"; "auto", "bfloat16", ...)."""

from __future__ import annotations

import functools
import time

import torch


def resolve_device(name: str) -> torch.device:
    """"auto" is the first GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> str:
    """"auto" is bfloat16, except on a CPU that has no fast BF16 matrix multiply: float32 there."""
    if name != "auto":
        return name
    return "bfloat16" if device.type != "cpu" or cpu_has_fast_bf16() else "float32"


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether BF16 GEMMs run on this CPU at least about as fast as FP32 ones. CPUs without BF16
    instructions (AVX2-only, most AMD before Zen 4) emulate them hundreds of times slower
    (1,237 ms against 4 ms for 512x512x2048 with oneDNN held to AVX2), which makes a BF16 engine
    unusable there; timed once, on a GEMM of ~17M multiply-adds."""
    a = torch.randn(256, 256)
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = a.to(dtype)
        x @ x
        start = time.perf_counter()
        for _ in range(3):
            x @ x
        times[dtype] = time.perf_counter() - start
    return times[torch.bfloat16] < 4 * times[torch.float32]
