"""The orchestrator's config (nesting the `EngineConfig` every worker runs) and one worker's spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.rank_plan import RankPlan

TOPOLOGIES = ("disaggregated", "colocated")
LAUNCHERS = ("local", "mpi")


@dataclass(frozen=True)
class OrchestratorConfig:
    engine: EngineConfig  # what every worker runs (each on its own device)
    topology: str = "disaggregated"  # context + generation workers, or colocated workers (both engines each)
    context_workers: int = 1
    generation_workers: int = 1  # the colocated workers in that topology
    devices: tuple[str, ...] = ()  # taken in turn by the workers; () = every GPU, else the CPU
    kv_transport: str = "auto"  # nixl, torch, auto, or "package.module:Class"
    host: str = "127.0.0.1"  # where workers of this host meet (torch.distributed rendezvous)
    max_pending: int = 256  # requests in flight before Overloaded (HTTP 429)
    request_timeout: float | None = None  # seconds before a request fails
    max_retries: int = 1  # times a request that produced no output is retried after its worker died
    max_restarts: int = 5  # times a dead worker is replaced (with backoff) before its slot stays empty
    context_tensor_parallel_size: int | None = None  # None: the engine's (`EngineConfig.tensor_parallel_size`)
    launcher: str = "local"  # how workers start: local (child processes), mpi (`mpirun -n TP` per worker)

    def __post_init__(self):
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {', '.join(TOPOLOGIES)} (got {self.topology!r})")
        if self.generation_workers < 1 or (self.topology == "disaggregated" and self.context_workers < 1):
            raise ValueError("every role needs at least one worker")
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)} (got {self.launcher!r})")

    def tensor_parallel_size(self, role: str) -> int:
        if role == "context" and self.context_tensor_parallel_size is not None:
            return self.context_tensor_parallel_size
        return self.engine.tensor_parallel_size

    @property
    def roles(self) -> list[str]:
        if self.topology == "colocated":
            return ["colocated"] * self.generation_workers
        return ["context"] * self.context_workers + ["generation"] * self.generation_workers


@dataclass(frozen=True)
class WorkerSpec:
    role: str  # context, generation or colocated
    name: str  # e.g. generation0; stays the same when a dead worker is replaced
    engine: EngineConfig
    transport: str | None = None  # import path of the KV transport (None: colocated, no transfer)
    transport_options: dict[str, Any] = field(default_factory=dict)
    incarnation: int = 0  # how many times this worker was replaced
    hold_seconds: float = 60.0  # context worker, pull: how long prefilled KV waits for its reader
    kv_events: bool = False  # report the prefix cache's stored and evicted blocks (`messages.KVEvents`)
    ranks: tuple[RankPlan, ...] = ()  # tensor parallelism: how each rank joins (empty: one rank, no group)
    rank_transport_options: tuple[dict[str, Any], ...] = ()  # per rank, where ranks differ (else transport_options)

    @property
    def tp_size(self) -> int:
        return self.engine.tensor_parallel_size

    def transport_options_of(self, rank: int) -> dict[str, Any]:
        return self.rank_transport_options[rank] if self.rank_transport_options else self.transport_options

    @property
    def id(self) -> str:
        """This incarnation's name: its messages' sender and its KV transport agent's name."""
        return f"{self.name}.{self.incarnation}"
