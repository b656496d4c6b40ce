"""Tensor parallelism inside the model: which part of every weight and KV head one rank holds, and
the collectives its layers call (Megatron's split: column-parallel q/k/v and gate/up, row-parallel
o and down projections, vocab-parallel embedding and LM head).

A `TPGroup` of size 1 makes every helper here a no-op, so the single-GPU path is the same code.
Ranks are numbered within the group; `group` is its torch.distributed process group (NCCL on GPUs,
gloo on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.runtime.config import ModelConfig

NVFP4_BLOCK = 16  # a row-parallel shard of an NVFP4 weight starts and ends on a scale block


@dataclass(frozen=True)
class TPGroup:
    rank: int = 0
    size: int = 1
    group: Any = None  # the ranks' torch.distributed process group (None: one rank)
    control: Any = None  # a gloo group over the same ranks, for Python objects (rank 0's commands)

    def all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        """x summed over the ranks (the partial outputs of a row-parallel GEMM). Inside a compiled
        region a functional collective, which torch.compile traces (no graph break); eager, in place."""
        if self.size == 1:
            return x
        if torch.compiler.is_compiling():
            return funcol.all_reduce(x, "sum", self.group)
        dist.all_reduce(x, group=self.group)
        return x

    def gather_columns(self, x: torch.Tensor) -> torch.Tensor | None:
        """Each rank's [R, C] -> [R, size * C] on rank 0, ranks in order; None on the other ranks."""
        if self.size == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.size)] if self.rank == 0 else None
        dist.gather(x.contiguous(), parts, group=self.group, group_dst=0)
        return torch.cat(parts, dim=1) if self.rank == 0 else None

    def broadcast(self, obj: Any = None) -> Any:
        """Rank 0's `obj` on every rank (the others pass nothing and wait for it)."""
        box = [obj]
        dist.broadcast_object_list(box, group=self.control, group_src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj`, in rank order, on rank 0; None on the others."""
        out = [None] * self.size if self.rank == 0 else None
        dist.gather_object(obj, out, group=self.control, group_dst=0)
        return out


def kv_head_range(num_kv_heads: int, tp_size: int, rank: int) -> tuple[int, int]:
    """The KV heads [start, stop) rank `rank` of `tp_size` holds (`KVCacheLayout.kv_heads`)."""
    return KVCacheLayout(1, num_kv_heads, 1, tp_size=tp_size, tp_rank=rank).kv_heads()


def tp_problems(cfg: ModelConfig, tp_size: int) -> list[str]:
    """Why the model does not split evenly over tp_size ranks (empty: it does)."""
    if tp_size == 1:
        return []
    problems = []
    if cfg.num_heads % tp_size:
        problems.append(f"{cfg.num_heads} attention heads")
    if cfg.num_kv_heads % tp_size and tp_size % cfg.num_kv_heads:
        problems.append(f"{cfg.num_kv_heads} KV heads (neither divides the other)")
    if cfg.intermediate_size % tp_size or (cfg.intermediate_size // tp_size) % NVFP4_BLOCK:
        problems.append(f"intermediate size {cfg.intermediate_size} (each rank's share must be a multiple of "
                        f"{NVFP4_BLOCK}, an NVFP4 scale block)")
    if not cfg.num_heads % tp_size and (cfg.num_heads // tp_size * cfg.head_dim) % NVFP4_BLOCK:
        problems.append(f"{cfg.num_heads // tp_size} query heads of {cfg.head_dim} per rank (a multiple of "
                        f"{NVFP4_BLOCK} values is needed)")
    return problems


def check_tp(cfg: ModelConfig, tp_size: int) -> None:
    """Raise ValueError, saying which sizes would work, unless the model splits evenly over tp_size."""
    problems = tp_problems(cfg, tp_size)
    if problems:
        sizes = [str(n) for n in (1, 2, 4, 8) if not tp_problems(cfg, n)]
        raise ValueError(f"tensor parallel size {tp_size} does not split this model: " + "; ".join(problems)
                         + f". Sizes that do: {', '.join(sizes)}.")


@dataclass(frozen=True)
class Shard:
    """The part of a (fused) projection one rank holds: for each source projection, the range
    [start, stop) of `full` along `dim` of its weight (0: output rows, column-parallel; 1: input
    columns, row-parallel). Tensors stored packed or per block along `dim` (NVFP4 weights and
    scales) are cut at the same fraction."""

    dim: int
    ranges: tuple[tuple[int, int, int], ...]  # per source: (start, stop, full)
    keeps_bias: bool = True  # row-parallel: only rank 0 adds the bias (it is summed over the ranks)

    @classmethod
    def whole(cls, sizes: list[int]) -> Shard:
        return cls(0, tuple((0, n, n) for n in sizes))

    def part(self, source: int) -> tuple[int, int, int, int]:
        """(dim, start, stop, full) of source projection `source`, for `TensorReader.get`."""
        return (self.dim, *self.ranges[source if self.dim == 0 else 0])


def column_shard(sizes: list[tuple[int, int, int]]) -> Shard:
    return Shard(0, tuple(sizes))


def row_shard(in_features: int, tp: TPGroup) -> Shard:
    share = in_features // tp.size
    return Shard(1, ((tp.rank * share, (tp.rank + 1) * share, in_features),), keeps_bias=tp.rank == 0)


def vocab_range(vocab_size: int, tp: TPGroup) -> tuple[int, int, int]:
    """Rows [start, stop) of the embedding and LM head this rank holds, and the padded share every
    rank allocates (the last rank's may be partly padding)."""
    share = -(-vocab_size // tp.size)
    start = min(tp.rank * share, vocab_size)
    return start, min(start + share, vocab_size), share
