"""`trtllm-mixquant serve`: the OpenAI-compatible server in one uvicorn process (the orchestrator
lives in its event loop; the workers are its child processes)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from trtllm_mixquant.generate_cli import check_engine_dir, default_engine_dir
from trtllm_mixquant.help_format import HelpFormatter
from trtllm_mixquant.server.config import add_server_arguments, server_config_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trtllm-mixquant serve", formatter_class=HelpFormatter,
                                description="Serve the engines over the OpenAI API (completions, chat, tools).")
    p.add_argument("engine_dir", nargs="?", type=Path, default=default_engine_dir(),
                   help="build.py output folder; the served model id is its name")
    add_server_arguments(p)
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import uvicorn

    from trtllm_mixquant.server.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_engine_dir(args.engine_dir)
    config = server_config_from_args(args, args.engine_dir)
    server: uvicorn.Server | None = None
    started = time.perf_counter()

    def stop() -> None:
        server.should_exit = True

    def ready() -> None:
        print(f"ready in {time.perf_counter() - started:.0f} s: {config.model_name} on "
              f"http://{config.host}:{config.port}/v1 (health: /health, metrics: /metrics; Ctrl-C stops)", flush=True)

    try:
        app = create_app(config, on_start_failure=stop, on_ready=ready)
    except ValueError as e:  # an engine folder that cannot be served
        raise SystemExit(f"error: {e}") from None
    o = config.orchestrator
    def tp(role: str) -> str:
        n = o.tensor_parallel_size(role)
        return f" (TP {n}: {n} ranks each)" if n > 1 else ""

    workers = (f"{o.context_workers} context{tp('context')} + {o.generation_workers} generation{tp('generation')}"
               if o.topology == "disaggregated" else f"{o.generation_workers} colocated{tp('colocated')}")
    print(f"serve: starting {workers} worker(s) for {config.engine_dir}; the URL is printed once they are ready",
          flush=True)
    logging.getLogger("uvicorn.error").addFilter(lambda record: "Uvicorn running on" not in record.getMessage())
    uv_config = uvicorn.Config(app, host=config.host, port=config.port, log_level=args.log_level,
                               timeout_graceful_shutdown=config.shutdown_timeout)
    server = uvicorn.Server(uv_config)
    server.run()
    return 1 if app.state.server.start_error else 0


if __name__ == "__main__":
    raise SystemExit(main())
