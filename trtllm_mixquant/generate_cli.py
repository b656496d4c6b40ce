"""`trtllm-mixquant generate`, and what every command that runs an engine folder shares: its
default folder, the error when it is missing, and the engine flags."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from trtllm_mixquant.engine.config import add_engine_arguments, engine_config_from_args
from trtllm_mixquant.help_format import HelpFormatter

def default_engine_dir() -> Path:
    from trtllm_mixquant.assets import DEFAULT_MODEL_DIR

    return Path("engines") / DEFAULT_MODEL_DIR.name


def check_engine_dir(engine_dir: Path) -> None:
    if not engine_dir.exists():
        sys.exit(f"error: {engine_dir} does not exist. Build the engines first with `trtllm-mixquant build` (in a "
                 "clone of the repository `python build.py` does the same), or pass another engine folder.")


def engine_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    p.add_argument("engine_dir", nargs="?", type=Path, default=default_engine_dir(), help="build.py output folder")
    add_engine_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    return p


def setup_logging(args) -> None:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def generate_main(argv: list[str]) -> int:
    p = engine_parser("trtllm-mixquant generate", "Complete prompts offline with the Mix-Quant engines.")
    p.add_argument("--prompt", action="append", required=True, help="prompt text (repeat for a batch)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="tokens to generate at most (default: until EOS or the maximum sequence length)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="0: no top-k filter")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    check_engine_dir(args.engine_dir)
    setup_logging(args)
    from trtllm_mixquant import LLM, SamplingParams

    llm = LLM.from_config(engine_config_from_args(args, args.engine_dir))
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, seed=args.seed)
    outputs = llm.generate(args.prompt, params)
    for i, out in enumerate(outputs, 1):
        if len(outputs) > 1:
            print(f"--- completion {i} of {len(outputs)} ({len(out.token_ids)} tokens, {out.finish_reason}) ---")
        print(out.text)
    return 0
