"""Device-independent division by a constant."""

from __future__ import annotations

import torch

__all__ = ["div_exact"]


def div_exact(t: torch.Tensor, constant: float) -> torch.Tensor:
    """Correctly rounded `t / constant`, the same on CPU and CUDA.

    On CUDA, PyTorch turns division by a Python scalar into multiplication by its reciprocal (off by one ulp
    for some values when the reciprocal is inexact, e.g. 1/6, 1/448); dividing by a 0-d tensor on t's device
    keeps a true division.
    """
    return t / torch.tensor(constant, dtype=t.dtype, device=t.device)
