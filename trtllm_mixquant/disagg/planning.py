"""Which workers a deployment runs: one `WorkerSpec` per worker (its role, devices, dtype, KV
transport options and, under tensor parallelism, how each of its ranks joins its group)."""

from __future__ import annotations

from dataclasses import replace

from trtllm_mixquant.devices import resolve_device, resolve_dtype
from trtllm_mixquant.disagg.config import OrchestratorConfig, WorkerSpec
from trtllm_mixquant.engine.rank_plan import RankPlan, group_plans
from trtllm_mixquant.ports import free_port
from trtllm_mixquant.transfer import TRANSPORTS


def default_devices() -> tuple[str, ...]:
    import torch

    return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count())) or ("cpu",)


def plan_workers(config: OrchestratorConfig, transport: str | None) -> list[WorkerSpec]:
    """One spec per worker; a tensor-parallel worker's ranks take the next devices in turn (one each).
    transport: the KV transport's import path (None: colocated workers, no transfer)."""
    roles, devices = config.roles, config.devices or default_devices()
    sizes = [config.tensor_parallel_size(role) for role in roles]
    total = sum(sizes)
    cls = TRANSPORTS.resolve(transport) if transport else None
    options = cls.plan(total, config.host) if cls else [{}] * total
    # torch.distributed has one world per process: a transport that joins every rank into one
    # (gloo/NCCL send and receive) also holds the tensor-parallel groups
    world_port = free_port(config.host) if getattr(cls, "joins_world", False) and total > len(roles) else None
    counts = dict.fromkeys(roles, 0)
    specs, first = [], 0
    dtype = resolve_dtype(config.engine.dtype, resolve_device(devices[0]))  # one dtype: the KV pools must pair
    for role, n in zip(roles, sizes):
        engine = replace(config.engine, device=devices[first % len(devices)], dtype=dtype, tensor_parallel_size=n)
        group = tuple(range(first, first + n))
        if world_port is not None:
            ranks = tuple(RankPlan(r, n, first + r, total, group, config.host, world_port) for r in range(n))
        else:
            ranks = tuple(group_plans(n, config.host)) if n > 1 else ()
        specs.append(WorkerSpec(role, f"{role}{counts[role]}", engine, transport, options[first], ranks=ranks,
                                rank_transport_options=tuple(options[first:first + n]) if n > 1 else ()))
        counts[role] += 1
        first += n
    return specs
