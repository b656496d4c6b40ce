"""`RankPlan`: how one tensor-parallel rank joins torch.distributed (plain data, no torch import, so
configs that carry it keep `--help` fast)."""

from __future__ import annotations

from dataclasses import dataclass

from trtllm_mixquant.ports import free_port


@dataclass(frozen=True)
class RankPlan:
    """How one rank joins: its torch.distributed world (its own group's ranks, or every rank of a
    deployment when the torch.distributed KV transport joins all workers) and its group within it."""

    tp_rank: int
    tp_size: int
    world_rank: int
    world_size: int
    group_ranks: tuple[int, ...]  # world ranks of its group, in tensor-parallel order
    host: str
    port: int  # of the world's rendezvous (rank 0 of the world listens)


def group_plans(tp_size: int, host: str = "127.0.0.1") -> list[RankPlan]:
    """One group that is its own world."""
    port = free_port(host)
    ranks = tuple(range(tp_size))
    return [RankPlan(r, tp_size, r, tp_size, ranks, host, port) for r in range(tp_size)]
