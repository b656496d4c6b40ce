"""Devices and dtypes as users give them ("auto", "cpu", "cuda:1"; "auto", "bfloat16", ...)."""

from __future__ import annotations

import functools

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
    """Whether oneDNN runs BF16 GEMMs on this CPU (AVX-512 or newer). Without it (AVX2-only CPUs,
    most AMD before Zen 4) torch emulates them hundreds of times slower (1,364 ms against 37 ms
    with AVX-512 and 16 ms with AVX-512 BF16 for a 512x2048x512 GEMM, oneDNN held to each ISA with
    ONEDNN_MAX_CPU_ISA), which makes a BF16 engine unusable there. Read from the CPU's features,
    not timed, so that every process on a host decides the same (the KV dtypes of a context and a
    generation worker must match)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False
