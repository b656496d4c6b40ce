"""`trtllm-mixquant`: one command with a subcommand per job."""

from __future__ import annotations

import argparse
import sys
from trtllm_mixquant.help_format import HelpFormatter

USAGE = """\
trtllm-mixquant COMMAND [options]

commands:
  build          build the context (NVFP4/FP8) and generation (BF16) engines; same as `python build.py`
  demo           agent tasks on the shipped model: tool calls, answers, prefill and cache per turn
  chat           chat with the shipped agent model and its tools
  generate       complete prompts offline (quantized prefill, BF16 decode)
  serve          OpenAI-compatible HTTP server (disaggregated or colocated workers)
  triton         serve with Triton Inference Server (tritonserver fetched once)
  deploy         Kubernetes, NVIDIA Dynamo and TensorRT-LLM files for an engine pair
  worker         one NVIDIA Dynamo worker (context = prefill, generation = decode), as a pod runs it
  triton-repo    write the Triton model repository of an engine pair
  eval           accuracy of bf16 / quantized / mixquant on your engines and data
  bench prefill  prefill throughput on a GPU: ours (BF16, FP8, NVFP4 emulated) vs transformers
  bench decode   decode on a GPU: one sequence after 2K/32K tokens, 8/32/64 together, vs transformers
  bench serve    requests/s and latency percentiles of a running server
  bench sessions a 10-turn agent session: prefill tokens and KV bytes saved by reuse
  bench disagg   two GPUs: TTFT split (queue, prefill, KV transfer, first decode) and KV bandwidth
  bench transfer NIXL KV moves in one process (host memory or one GPU), across tensor-parallel sizes, vs a copy
  bench triton   startup and per-request latency through tritonserver vs the engine called directly
  bench dynamo   startup, TTFT and inter-token latency through NVIDIA Dynamo vs `serve`, same engines
  random-model   write a randomly initialised Hugging Face model (tests, speed work)

Run `trtllm-mixquant COMMAND --help` for a command's options.
"""
BENCHES = ("prefill", "decode", "serve", "sessions", "disagg", "transfer", "triton", "dynamo")
BENCH_USAGE = f"trtllm-mixquant bench {{{','.join(BENCHES)}}} [options]\n\n" + "\n".join(
    line.replace("  bench ", "  ", 1) for line in USAGE.splitlines() if line.startswith("  bench ")) + \
    "\n\nRun `trtllm-mixquant bench NAME --help` for its options."


def random_model_main(argv: list[str]) -> int:
    from trtllm_mixquant.random_model import FAMILIES, SHAPES, write_random_model

    p = argparse.ArgumentParser(prog="trtllm-mixquant random-model", formatter_class=HelpFormatter,
                                description="Write a randomly initialised model with a byte-level tokenizer.")
    p.add_argument("output", help="folder to write")
    p.add_argument("--family", choices=tuple(FAMILIES), default="qwen3")
    p.add_argument("--shape", choices=tuple(SHAPES), default="tiny")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(write_random_model(args.output, args.family, args.shape, args.seed))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "build":
        from trtllm_mixquant.builder.cli import main as build_main

        return build_main(rest)
    if command == "generate":
        from trtllm_mixquant.generate_cli import generate_main

        return generate_main(rest)
    if command in ("demo", "chat"):
        from trtllm_mixquant.demo import cli as demo_cli

        return (demo_cli.demo_main if command == "demo" else demo_cli.chat_main)(rest)
    if command == "serve":
        from trtllm_mixquant.server.main import main as serve_main

        return serve_main(rest)
    if command in ("triton", "triton-repo"):
        from trtllm_mixquant.triton import cli as triton_cli

        return (triton_cli.serve_main if command == "triton" else triton_cli.repo_main)(rest)
    if command == "deploy":
        from trtllm_mixquant.deploy.cli import main as deploy_main

        return deploy_main(rest)
    if command == "worker":
        from trtllm_mixquant.dynamo.cli import worker_main

        return worker_main(rest)
    if command == "eval":
        from trtllm_mixquant.eval.cli import main as eval_main

        return eval_main(rest)
    if command == "bench":
        if rest[:1] not in ([b] for b in BENCHES):
            print(BENCH_USAGE)
            return 0 if rest[:1] in (["-h"], ["--help"]) else 2
        import importlib

        return importlib.import_module(f"trtllm_mixquant.bench.{rest[0]}").main(rest[1:])
    if command == "random-model":
        return random_model_main(rest)
    print(f"trtllm-mixquant: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
