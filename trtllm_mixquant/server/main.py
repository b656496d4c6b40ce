"""`trtllm-mixquant serve`: the OpenAI-compatible server in one uvicorn process (the orchestrator
lives in its event loop; the workers are its child processes)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from trtllm_mixquant.disagg.orchestrator import TOPOLOGIES
from trtllm_mixquant.engine.engine_dirs import MODES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trtllm-mixquant serve",
                                description="Serve the engines over the OpenAI API (completions, chat, tools).")
    p.add_argument("engine_dir", nargs="?", type=Path, default=None,
                   help="build.py output folder (default: the shipped model's, engines/<name>); "
                        "the served model id is its name")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` on /v1")
    p.add_argument("--topology", choices=TOPOLOGIES, default="disaggregated")
    p.add_argument("--context-workers", type=int, default=1, help="quantized-prefill workers (disaggregated)")
    p.add_argument("--generation-workers", type=int, default=1, help="BF16 decode workers (or colocated workers)")
    p.add_argument("--devices", default=None,
                   help="comma-separated devices the workers take in turn (default: every GPU, else cpu)")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16",
                   help="activation dtype of the workers (float32: outputs comparable with an fp32 offline LLM)")
    p.add_argument("--mode", choices=MODES, default="mixquant",
                   help="precision of requests that do not set `mixquant.mode`")
    p.add_argument("--num-precise-prompt-tokens", type=int, default=1,
                   help="prompt tokens at the end prefilled in BF16 in mixquant mode")
    p.add_argument("--max-pending", type=int, default=256, help="requests in flight before answering 429")
    p.add_argument("--request-timeout", type=float, default=None, help="seconds before a request fails")
    p.add_argument("--kv-cache-blocks", type=int, default=None, help="KV blocks per worker (default: from the engine)")
    p.add_argument("--max-num-seqs", type=int, default=64, help="sequences a worker batches")
    p.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="seconds in-flight requests get to finish on SIGINT/SIGTERM before they are cancelled")
    p.add_argument("--enforce-eager", action="store_true",
                   help="on a GPU, run without torch.compile and CUDA graphs: starts in seconds, steps run slower")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def default_devices() -> tuple[str, ...]:
    import torch

    return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count())) or ("cpu",)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from trtllm_mixquant.generate_cli import default_engine_dir
    from trtllm_mixquant.server.app import create_app
    from trtllm_mixquant.server.settings import ServerSettings

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine_dir = args.engine_dir or default_engine_dir()
    if not engine_dir.exists():
        raise SystemExit(f"error: {engine_dir} does not exist; build engines first with `python build.py`.")
    devices = tuple(d.strip() for d in args.devices.split(",")) if args.devices else default_devices()
    settings = ServerSettings(engine_dir, args.host, args.port, args.api_key, args.topology, args.context_workers,
                              args.generation_workers, devices, args.dtype, args.mode, args.num_precise_prompt_tokens,
                              args.max_pending, args.request_timeout, args.kv_cache_blocks, args.max_num_seqs,
                              args.shutdown_timeout, args.enforce_eager)
    server: uvicorn.Server | None = None

    def stop() -> None:
        server.should_exit = True

    try:
        app = create_app(settings, on_start_failure=stop)
    except ValueError as e:  # an engine folder that cannot be served
        raise SystemExit(f"error: {e}") from None
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=args.shutdown_timeout)
    server = uvicorn.Server(config)
    server.run()
    return 1 if app.state.server.start_error else 0


if __name__ == "__main__":
    raise SystemExit(main())
