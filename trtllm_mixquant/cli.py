"""`trtllm-mixquant`: one command with a subcommand per job."""

from __future__ import annotations

import argparse
import sys

USAGE = """\
trtllm-mixquant COMMAND [options]

commands:
  build          build the context (NVFP4/FP8) and generation (BF16) engines; same as `python build.py`
  generate       complete prompts offline (quantized prefill, BF16 decode)
  chat           interactive multi-turn chat
  serve          OpenAI-compatible HTTP server (disaggregated or colocated workers)
  eval           accuracy of bf16 / quantized / mixquant on your engines and data
  bench prefill  prefill throughput on a GPU: ours (BF16, FP8, NVFP4 emulated) vs transformers
  bench serve    requests/s and latency percentiles of a running server
  bench sessions a 10-turn agent session: prefill tokens and KV bytes saved by reuse
  bench disagg   two GPUs: TTFT split (queue, prefill, KV transfer, first decode) and KV bandwidth
  random-model   write a randomly initialised Hugging Face model (tests, speed work)

Run `trtllm-mixquant COMMAND --help` for a command's options.
"""


def random_model_main(argv: list[str]) -> int:
    from trtllm_mixquant.random_model import FAMILIES, SHAPES, write_random_model

    p = argparse.ArgumentParser(prog="trtllm-mixquant random-model",
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
    if command in ("generate", "chat"):
        from trtllm_mixquant import generate_cli

        return (generate_cli.generate_main if command == "generate" else generate_cli.chat_main)(rest)
    if command == "serve":
        from trtllm_mixquant.server.main import main as serve_main

        return serve_main(rest)
    if command == "eval":
        from trtllm_mixquant.eval.cli import main as eval_main

        return eval_main(rest)
    if command == "bench" and rest[:1] in (["prefill"], ["serve"], ["disagg"], ["sessions"]):
        import importlib

        module = {"prefill": "trtllm_mixquant.bench.prefill", "serve": "trtllm_mixquant.bench.serve",
                  "disagg": "trtllm_mixquant.bench.disagg", "sessions": "trtllm_mixquant.bench.sessions"}[rest[0]]
        return importlib.import_module(module).main(rest[1:])
    if command == "random-model":
        return random_model_main(rest)
    print(f"trtllm-mixquant: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
