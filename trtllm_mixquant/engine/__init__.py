"""Engines: the backend interface (`base.EngineBackend`), its PyTorch implementation (`core`,
scheduler, block manager, model runner), the config (`config.EngineConfig`), the phase rule and
request checks (`phase`), and the offline `LLM`.

`create_backend(config, role)` is the one way to build a backend. `BACKENDS` maps a backend name
(`EngineConfig.backend`) to its builder `(config, dirs, role) -> EngineBackend`, so another
implementation (a TensorRT-LLM executor) is one module and one `BACKENDS.register` line, with no
change to the workers or the front ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trtllm_mixquant.registry import Registry

if TYPE_CHECKING:
    from trtllm_mixquant.engine.base import EngineBackend
    from trtllm_mixquant.engine.config import EngineConfig
    from trtllm_mixquant.engine.engine_dirs import EngineDirs
    from trtllm_mixquant.runtime.parallel import TPGroup

ROLES = ("context", "generation", "colocated")
BACKENDS = Registry("engine backend", {"pytorch": "trtllm_mixquant.engine.pytorch_backend:build_pytorch_backend"})


def create_backend(config: EngineConfig, role: str = "colocated", dirs: EngineDirs | None = None,
                   tp: TPGroup | None = None) -> EngineBackend:
    """The backend `config.backend` for `role`: context (quantized weights), generation (BF16) or
    colocated (both, one KV pool). Under tensor parallelism `tp` is this rank's group; without it,
    rank 0 starts the other ranks itself (`engine.ranks.spawn_followers`)."""
    from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs

    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)} (got {role!r})")
    dirs = dirs or resolve_engine_dirs(config.engine_dir)
    if tp is None and config.tensor_parallel_size > 1:
        from trtllm_mixquant.engine.ranks import spawn_followers

        tp = spawn_followers(config, role)
    return BACKENDS.resolve(config.backend)(config, dirs, role, tp)
