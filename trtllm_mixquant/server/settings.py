"""What the server is started with (the `serve` command's options)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trtllm_mixquant.disagg.orchestrator import Orchestrator


@dataclass(frozen=True)
class ServerSettings:
    engine_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # None: no authentication
    topology: str = "disaggregated"
    context_workers: int = 1
    generation_workers: int = 1
    devices: tuple[str, ...] | None = None  # None: the orchestrator's default (cpu)
    dtype: str = "bfloat16"  # float32 makes outputs comparable token for token with an fp32 offline LLM
    mode: str = "mixquant"  # the default of requests that do not ask for one
    num_precise_prompt_tokens: int = 1
    max_pending: int = 256  # requests in flight before 429
    request_timeout: float | None = None
    kv_cache_blocks: int | None = None
    max_num_seqs: int = 64
    shutdown_timeout: float = 30.0  # seconds in-flight requests get to finish on SIGINT/SIGTERM
    enforce_eager: bool = False  # GPU workers without torch.compile and CUDA graphs

    @property
    def model_name(self) -> str:
        """The model id served: the engine folder's name."""
        return Path(self.engine_dir).resolve().name

    def orchestrator(self) -> Orchestrator:
        options = dict(dtype=self.dtype, max_num_seqs=self.max_num_seqs, cuda_graphs=not self.enforce_eager,
                       compile_regions=not self.enforce_eager)
        if self.kv_cache_blocks:
            options["kv_cache_blocks"] = self.kv_cache_blocks
        return Orchestrator(str(self.engine_dir), self.topology, self.context_workers, self.generation_workers,
                            list(self.devices) if self.devices else None, self.mode, self.num_precise_prompt_tokens,
                            self.max_pending, self.request_timeout, **options)
