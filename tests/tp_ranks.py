"""Run a function on every rank of a tensor-parallel group of CPU processes (gloo) and return rank 0's result."""

from __future__ import annotations

import pickle

import torch

from trtllm_mixquant.engine.rank_plan import group_plans
from trtllm_mixquant.engine.ranks import join
from trtllm_mixquant.processes import child_processes


def _rank(plan, fn, args, results) -> None:
    torch.set_num_threads(1)
    out = fn(join(plan, torch.device("cpu")), *args)
    if plan.tp_rank == 0:
        results.put(pickle.dumps(out))  # plain bytes: tensors shared by file descriptor die with this process


def run_ranks(tp_size: int, fn, *args, timeout: float = 300):
    """fn(tp_group, *args) on each of tp_size ranks (child processes); fn must be importable (module level)."""
    ctx = child_processes()
    results = ctx.Queue()
    ranks = [ctx.Process(target=_rank, args=(plan, fn, args, results)) for plan in group_plans(tp_size)]
    for p in ranks:
        p.start()
    try:
        out = pickle.loads(results.get(timeout=timeout))
    finally:
        for p in ranks:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in ranks] == [0] * tp_size
    return out
