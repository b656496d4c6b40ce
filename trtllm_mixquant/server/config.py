"""`ServerConfig`: what `trtllm-mixquant serve` runs (nesting the orchestrator's and the engine's
configs), and its command-line flags, mapped onto the configs in one place."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from trtllm_mixquant.disagg.config import LAUNCHERS, TOPOLOGIES, OrchestratorConfig
from trtllm_mixquant.engine.config import EngineConfig, add_engine_arguments, engine_config_from_args


@dataclass(frozen=True)
class ServerConfig:
    orchestrator: OrchestratorConfig
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # None: no authentication; else required everywhere but /health
    shutdown_timeout: float = 30.0  # seconds in-flight requests get to finish on SIGINT/SIGTERM
    max_body_bytes: int = 8 << 20  # larger request bodies are refused (413) before they are read
    metrics_without_key: bool = False  # /metrics open to a Prometheus scraper that has no key
    enable_docs: bool = False  # /docs, /redoc and /openapi.json
    trust_request_chat_template: bool = False  # let requests bring their own chat template (it runs here)
    served_model_names: tuple[str, ...] = ()  # the model ids clients may send; () : the engine folder's name

    @property
    def engine_dir(self) -> Path:
        return self.orchestrator.engine.engine_dir

    @property
    def model_names(self) -> tuple[str, ...]:
        return self.served_model_names or (self.engine_dir.resolve().name,)

    @property
    def model_name(self) -> str:
        """The model id responses name: the first served name."""
        return self.model_names[0]


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    d = ServerConfig(OrchestratorConfig(EngineConfig(Path("."))))
    o = d.orchestrator
    p.add_argument("--host", default=d.host, help="address to listen on (loopback only by default)")
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--api-key", default=None,
                   help="require `Authorization: Bearer KEY` on every endpoint but /health")
    p.add_argument("--metrics-without-key", action="store_true", help="leave /metrics open (for a Prometheus scraper)")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                   help="largest request body accepted (larger ones get 413)")
    p.add_argument("--enable-docs", action="store_true", help="serve /docs, /redoc and /openapi.json")
    p.add_argument("--trust-request-chat-template", action="store_true",
                   help="accept a chat template sent in a request (chat_template_kwargs.chat_template); it runs "
                        "on this server, so only enable it for trusted clients")
    p.add_argument("--served-model-name", nargs="+", default=None, metavar="NAME",
                   help="the model ids this server answers to, the first one named in responses (default: the "
                        "engine folder's name)")
    p.add_argument("--topology", choices=TOPOLOGIES, default=o.topology,
                   help="disaggregated: context and generation workers; colocated: workers holding both engines")
    p.add_argument("--context-workers", type=int, default=o.context_workers, help="quantized-prefill workers")
    p.add_argument("--generation-workers", type=int, default=o.generation_workers,
                   help="BF16 decode workers (the colocated workers in that topology)")
    p.add_argument("--devices", default=None,
                   help="comma-separated devices the workers take in turn (default: every GPU, else cpu)")
    p.add_argument("--kv-transport", default=o.kv_transport, help="nixl, torch (torch.distributed) or auto")
    p.add_argument("--context-tensor-parallel-size", "--context-tp", type=int, default=None,
                   help="ranks of each context worker (default: --tensor-parallel-size)")
    p.add_argument("--launcher", choices=LAUNCHERS, default=o.launcher,
                   help="local: workers as child processes; mpi: each worker under `mpirun -n TP` (mpi4py ranks)")
    p.add_argument("--max-pending", type=int, default=o.max_pending, help="requests in flight before answering 429")
    p.add_argument("--request-timeout", type=float, default=None, help="seconds before a request fails")
    p.add_argument("--shutdown-timeout", type=float, default=d.shutdown_timeout,
                   help="seconds in-flight requests get to finish on SIGINT/SIGTERM before they are cancelled")
    add_engine_arguments(p, device=False)


def server_config_from_args(args: argparse.Namespace, engine_dir: Path) -> ServerConfig:
    devices = tuple(d.strip() for d in args.devices.split(",")) if args.devices else ()
    orchestrator = OrchestratorConfig(engine_config_from_args(args, engine_dir), args.topology, args.context_workers,
                                      args.generation_workers, devices, args.kv_transport,
                                      max_pending=args.max_pending, request_timeout=args.request_timeout,
                                      context_tensor_parallel_size=args.context_tensor_parallel_size,
                                      launcher=args.launcher)
    return ServerConfig(orchestrator, args.host, args.port, args.api_key, args.shutdown_timeout, args.max_body_bytes,
                        args.metrics_without_key, args.enable_docs, args.trust_request_chat_template,
                        tuple(args.served_model_name or ()))
