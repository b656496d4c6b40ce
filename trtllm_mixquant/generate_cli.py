"""`trtllm-mixquant generate` and `trtllm-mixquant chat`: the offline LLM from the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from trtllm_mixquant.engine.config import add_engine_arguments, engine_config_from_args


def default_engine_dir() -> Path:
    from trtllm_mixquant.assets import DEFAULT_MODEL_DIR

    return Path("engines") / DEFAULT_MODEL_DIR.name


def common_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("engine_dir", nargs="?", type=Path, default=None,
                   help="build.py output folder (default: the shipped model's, engines/<name>)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="tokens to generate at most (default: until EOS or the maximum sequence length)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=None)
    add_engine_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def make_llm(args):
    from trtllm_mixquant import LLM, SamplingParams

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    engine_dir = args.engine_dir or default_engine_dir()
    if not engine_dir.exists():
        sys.exit(f"error: {engine_dir} does not exist; build engines first with `python build.py`.")
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, seed=args.seed)
    return LLM.from_config(engine_config_from_args(args, engine_dir)), params


def generate_main(argv: list[str]) -> int:
    p = common_parser("trtllm-mixquant generate", "Complete prompts with the Mix-Quant engines.")
    p.add_argument("--prompt", action="append", required=True, help="prompt text (repeat for a batch)")
    args = p.parse_args(argv)
    llm, params = make_llm(args)
    for out in llm.generate(args.prompt, params):
        print(out.text)
    return 0


def chat_main(argv: list[str]) -> int:
    p = common_parser("trtllm-mixquant chat", "Interactive multi-turn chat (/reset clears the history, /exit quits).")
    p.add_argument("--system", default=None, help="system prompt")
    args = p.parse_args(argv)
    llm, params = make_llm(args)
    system = [{"role": "system", "content": args.system}] if args.system else []
    history = list(system)
    while True:
        try:
            line = input("you> ")
        except EOFError:
            return 0
        if line.strip() == "/exit":
            return 0
        if line.strip() == "/reset":
            history = list(system)
            continue
        history.append({"role": "user", "content": line})
        out = llm.chat(history, params=params)
        history.append({"role": "assistant", "content": out.text})
        print(f"assistant> {out.text}")
