"""`trtllm-mixquant triton-repo` (write the model repository of an engine pair) and
`trtllm-mixquant triton` (write it, get tritonserver and its Python environment, and serve)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from trtllm_mixquant.disagg.config import TOPOLOGIES
from trtllm_mixquant.engine.config import DTYPES
from trtllm_mixquant.engine.phase import MODES
from trtllm_mixquant.generate_cli import check_engine_dir, default_engine_dir
from trtllm_mixquant.help_format import HelpFormatter


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("engine_dir", nargs="?", type=Path, default=default_engine_dir(), help="build.py output folder")
    p.add_argument("--topology", choices=TOPOLOGIES, default="colocated",
                   help="colocated: both engines in the model instance; disaggregated: context and generation "
                        "workers on the devices the instance sees")
    p.add_argument("--mode", choices=MODES, default="mixquant", help="precision of requests without mixquant_mode")
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--kv-cache-blocks", type=int, default=None, help="KV blocks (default: the engine's)")


def model_parameters(args) -> dict[str, str]:
    params = {"topology": args.topology, "mode": args.mode, "dtype": args.dtype, "device": args.device}
    if args.kv_cache_blocks:
        params["kv_cache_blocks"] = str(args.kv_cache_blocks)
    return params


def repo_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant triton-repo", formatter_class=HelpFormatter,
                                description="Write a Triton model repository for an engine pair: `mixquant` "
                                            "(decoupled: generate, generate_stream, gRPC streaming) and "
                                            "`mixquant_infer` (KServe infer), with TensorRT-LLM's BLS tensor names.")
    add_model_arguments(p)
    p.add_argument("--output", type=Path, default=Path("triton_repo"), help="the repository folder")
    p.add_argument("--execution-env", type=Path, default=None,
                   help="the Python environment the stub runs in (EXECUTION_ENV_PATH); leave it out in NVIDIA's "
                        "Triton container when the package is installed there")
    args = p.parse_args(argv)
    check_engine_dir(args.engine_dir)
    from trtllm_mixquant.triton.repository import write_repository

    out = write_repository(args.engine_dir, args.output, model_parameters(args), args.execution_env)
    print(f"wrote {out}: models mixquant and mixquant_infer over {args.engine_dir}")
    return 0


def serve_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant triton", formatter_class=HelpFormatter,
                                description="Serve an engine pair with Triton Inference Server (tritonserver 2.51 "
                                            "from the nvidia-pytriton wheel, fetched once into the cache).")
    add_model_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address the HTTP, gRPC and metrics ports listen on")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    args = p.parse_args(argv)
    check_engine_dir(args.engine_dir)
    from trtllm_mixquant.triton.repository import write_repository
    from trtllm_mixquant.triton.server import (Ports, TritonSetupError, cache_dir, install_server, prepare_env,
                                               start_server, wait_ready)

    start = time.perf_counter()
    try:
        print("triton: preparing tritonserver and its Python environment (once; about a minute) ...", flush=True)
        files, env = install_server(), prepare_env()
    except TritonSetupError as e:
        sys.exit(f"error: {e}")
    repository = write_repository(args.engine_dir, cache_dir() / "repositories" / args.engine_dir.resolve().name,
                                  model_parameters(args), env)
    ports = Ports(args.http_port, args.grpc_port, args.metrics_port)
    process = start_server(files, repository, ports, args.host)
    try:
        wait_ready(f"http://{args.host}:{args.http_port}", process)
        print(f"ready in {time.perf_counter() - start:.0f} s: http://{args.host}:{args.http_port}"
              f"/v2/models/mixquant/generate (generate_stream; gRPC {args.host}:{args.grpc_port}; metrics :"
              f"{args.metrics_port}/metrics; Ctrl-C stops)", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait(60)
    except TritonSetupError as e:
        process.kill()
        sys.exit(f"error: {e}")
