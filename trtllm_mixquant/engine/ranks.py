"""Tensor-parallel ranks as processes: how each joins torch.distributed, and what the ranks other
than 0 do.

Rank 0 runs the engine (scheduler, blocks, sampling) and, where a worker owns it, the worker
channel; before every step it broadcasts the step's batch, and every rank runs the same forward on
its shard. Ranks 1..n-1 ("followers") hold a shard and a KV pool of the same blocks (their share of
the heads) and execute rank 0's commands in order: a step, a KV-transport call, stop. A follower
exits when rank 0 says stop or dies (its collectives then fail); rank 0 fails at its next
collective when a follower dies, and a launcher ends the group meanwhile, so a group lives and dies
as one worker.

Ranks meet through a TCP rendezvous (`rank_plan.RankPlan`): started by our launcher
(`spawn_followers`, the orchestrator's `LocalLauncher`) or by `mpirun` (`disagg.mpi_launcher`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from trtllm_mixquant.engine.rank_plan import RankPlan, group_plans
from trtllm_mixquant.processes import child_processes
from trtllm_mixquant.runtime.parallel import TPGroup

if TYPE_CHECKING:
    from trtllm_mixquant.engine.config import EngineConfig

STEP, KV, STOP = "step", "kv", "stop"  # rank 0's commands
# Followers wait in a broadcast for rank 0's next command however long the engine idles; a rank
# that dies closes its connections, which fails its peers' collectives at once.
TIMEOUT = timedelta(days=365)


def rank_device(device: str, tp_rank: int) -> torch.device:
    """Rank r's device for a configured `device`: the r-th GPU after it (one GPU per rank), or the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        first = int(device.partition(":")[2] or 0)
        device = f"cuda:{first + tp_rank}"
    return torch.device(device)


def join(plan: RankPlan, device: torch.device) -> TPGroup:
    """Join the world (once per process) and return this rank's group: NCCL between GPUs, gloo on
    CPU, and a gloo group for rank 0's commands either way."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, init_method=f"tcp://{plan.host}:{plan.port}", rank=plan.world_rank,
                                world_size=plan.world_size, timeout=TIMEOUT)
    ranks = list(plan.group_ranks)
    if plan.tp_size == 1:  # a single-rank worker in a world shared with other workers
        return TPGroup()
    if plan.world_size == plan.tp_size and backend == "gloo":
        return TPGroup(plan.tp_rank, plan.tp_size, dist.group.WORLD, dist.group.WORLD)
    group = dist.new_group(ranks, backend=backend, use_local_synchronization=True, timeout=TIMEOUT)
    control = group if backend == "gloo" else dist.new_group(ranks, backend="gloo", use_local_synchronization=True,
                                                            timeout=TIMEOUT)
    return TPGroup(plan.tp_rank, plan.tp_size, group, control)


def follow(tp: TPGroup, runner, transport: Any = None) -> None:
    """A follower's loop: run rank 0's commands until it says stop (or dies: the collective raises)."""
    while True:
        command, *args = tp.broadcast()
        if command == STOP:
            return
        if command == STEP:
            runner.forward(args[0])
        elif command == KV:
            op, op_args = args
            transport.follow(op, *op_args)


def stop_followers(tp: TPGroup) -> None:
    """Rank 0: end the followers' loops and leave the group (a later engine of this process may form another)."""
    if tp.size > 1 and tp.rank == 0:
        tp.broadcast((STOP,))
        dist.destroy_process_group()


def follower_main(plan: RankPlan, config: EngineConfig, role: str) -> None:
    """A follower spawned by an engine's own process (the offline `LLM`, `LocalEngine`); the backend
    picks this rank's device from `config` itself."""
    from trtllm_mixquant.engine import create_backend

    device = rank_device(config.device, plan.tp_rank)
    if device.type == "cpu":
        torch.set_num_threads(1)
    tp = join(plan, device)
    backend = create_backend(config, role, tp=tp)
    follow(tp, backend.runner)


def spawn_followers(config: EngineConfig, role: str) -> TPGroup:
    """Start ranks 1..n-1 of `config.tensor_parallel_size` as child processes and join as rank 0."""
    plans = group_plans(config.tensor_parallel_size)
    ctx = child_processes()
    for plan in plans[1:]:
        ctx.Process(target=follower_main, args=(plan, config, role), name=f"tp-rank{plan.tp_rank}",
                    daemon=True).start()
    return join(plans[0], rank_device(config.device, 0))
