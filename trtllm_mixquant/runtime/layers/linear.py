"""The phase-aware linear layer: quantized GEMMs for prefill tokens, BF16 GEMMs for the rest.

A `Linear` holds up to two kernels for the same projection: `precise` (the generation engine's
BF16 weights) and `quantized` (the context engine's NVFP4 or FP8 weights). The step's first
`num_quantized` token rows go through `quantized`, the others through `precise`; the phase is data
carried by the batch, not a global switch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trtllm_mixquant.runtime.parallel import Shard, TPGroup


def skinny_kernel(weight: torch.Tensor) -> tuple[object | None, int]:
    """The kernel for a few rows of x against this weight (`kernels.skinny_linear`: CUDA, bf16/fp16) and
    the most rows it takes; (None, 0) where cuBLAS (or the CPU) takes every shape."""
    if not (weight.is_cuda and weight.dtype in (torch.bfloat16, torch.float16)):
        return None, 0
    from trtllm_mixquant.runtime.kernels import skinny_linear

    return torch.ops.trtllm_mixquant.skinny_linear, skinny_linear.MAX_ROWS


class DenseLinear(torch.nn.Module):
    """Unquantized y = x W^T + b, in the weight's dtype. On a GPU, up to `max_skinny_rows` rows (decode
    steps) stream the weight through `kernels.skinny_linear`, the rest go to cuBLAS."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.contiguous(), requires_grad=False)
        self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)
        self.skinny, self.max_skinny_rows = skinny_kernel(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.skinny is not None and x.shape[0] <= self.max_skinny_rows:
            return self.skinny(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


class Linear(torch.nn.Module):
    """One projection with a `precise` kernel and optionally a `quantized` one.

    `sources` names the checkpoint projections fused into this one, concatenated along the output
    dimension (e.g. q_proj, k_proj, v_proj): one GEMM, and one activation quantization, for all.
    Under tensor parallelism `in_features` and `out_sizes` are this rank's, `shard` says which part of
    each source it loads, and a row-parallel projection sums its partial outputs over `reduce`.
    """

    def __init__(self, in_features: int, out_sizes: list[int], bias: bool, sources: tuple[str, ...] = (),
                 shard: Shard | None = None, reduce: TPGroup | None = None):
        super().__init__()
        self.in_features, self.out_sizes, self.has_bias, self.sources = in_features, out_sizes, bias, sources
        self.shard = shard or Shard.whole(out_sizes)
        self.reduce = reduce if reduce is not None and reduce.size > 1 else None  # no graph break on one rank
        self.precise: torch.nn.Module | None = None
        self.quantized: torch.nn.Module | None = None

    def checkpoint_names(self, name: str) -> list[str]:
        """Checkpoint prefixes of the projections this module holds, given its own module name."""
        parent = name.rpartition(".")[0]
        return [f"{parent}.{source}" for source in self.sources] if self.sources else [name]

    def forward(self, x: torch.Tensor, num_quantized: int) -> torch.Tensor:
        """x [T, in] -> [T, out]; rows [0, num_quantized) through the quantized kernel."""
        if num_quantized == 0:
            out = self.precise(x)
        elif num_quantized == x.shape[0]:
            out = self.quantized(x)
        else:
            out = torch.cat([self.quantized(x[:num_quantized]), self.precise(x[num_quantized:])])
        return out if self.reduce is None else self.reduce.all_reduce(out)
