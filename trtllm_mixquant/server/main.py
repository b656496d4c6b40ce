"""`trtllm-mixquant serve`: the OpenAI-compatible server in one uvicorn process (the orchestrator
lives in its event loop; the workers are its child processes)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from trtllm_mixquant.server.config import add_server_arguments, server_config_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trtllm-mixquant serve",
                                description="Serve the engines over the OpenAI API (completions, chat, tools).")
    p.add_argument("engine_dir", nargs="?", type=Path, default=None,
                   help="build.py output folder (default: the shipped model's, engines/<name>); "
                        "the served model id is its name")
    add_server_arguments(p)
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from trtllm_mixquant.generate_cli import default_engine_dir
    from trtllm_mixquant.server.app import create_app

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine_dir = args.engine_dir or default_engine_dir()
    if not engine_dir.exists():
        raise SystemExit(f"error: {engine_dir} does not exist; build engines first with `python build.py`.")
    config = server_config_from_args(args, engine_dir)
    server: uvicorn.Server | None = None

    def stop() -> None:
        server.should_exit = True

    try:
        app = create_app(config, on_start_failure=stop)
    except ValueError as e:  # an engine folder that cannot be served
        raise SystemExit(f"error: {e}") from None
    uv_config = uvicorn.Config(app, host=config.host, port=config.port, log_level=args.log_level,
                               timeout_graceful_shutdown=config.shutdown_timeout)
    server = uvicorn.Server(uv_config)
    server.run()
    return 1 if app.state.server.start_error else 0


if __name__ == "__main__":
    raise SystemExit(main())
