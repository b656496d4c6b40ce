"""`python build.py` / `trtllm-mixquant build`: command-line front end of the engine builder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from trtllm_mixquant.builder.quantize import PRECISIONS
from trtllm_mixquant.deploy.cli import add_deploy_arguments
from trtllm_mixquant.help_format import HelpFormatter
from trtllm_mixquant.manifest import DEFAULT_BLOCK_SIZE

DESCRIPTION = """\
Build the two engines of Mix-Quant serving from one Hugging Face model folder:

  context engine     prefills prompts with quantized weights and activations
                     (NVFP4 W4A4 by default, FP8 for Hopper speed), calibrated with NVIDIA ModelOpt
                     and exported as a ModelOpt checkpoint that TensorRT-LLM also reads;
  generation engine  decodes in BF16, the original weights.

Both write the same BF16 KV-cache layout, recorded in each folder's engine.json, so a request
prefilled by the context engine can be decoded by the generation engine.
"""
EPILOG = """\
examples:
  python build.py                                   # the shipped model, both engines, into engines/
  python build.py --model ~/models/Qwen3-8B --output engines/qwen3-8b
  python build.py --model ~/models/Qwen3-8B --phase context --context-precision fp8 --calib-file my.jsonl
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build.py", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    p.add_argument("--model", type=Path, default=None,
                   help="Hugging Face model folder (config.json, *.safetensors, tokenizer). "
                        "Default: the small model shipped with trtllm_mixquant.")
    p.add_argument("--output", type=Path, default=None,
                   help="where to write the engines (NAME/context and NAME/generation). Default: engines/<model folder name>")
    p.add_argument("--phase", choices=("context", "generation", "both"), default="both",
                   help="which engine(s) to build (default: both)")
    p.add_argument("--context-precision", choices=tuple(PRECISIONS), default="nvfp4",
                   help="context engine precision: nvfp4 (W4A4, Blackwell-native) or fp8 (fast on Hopper). Default: nvfp4")
    p.add_argument("--calib-file", type=Path, default=None,
                   help="calibration text: .txt (paragraphs), .jsonl or .json (strings or {\"text\": ...}). "
                        "Default: a small built-in mix of prose, code, tables, logs and chats")
    p.add_argument("--calib-samples", type=int, default=32, help="calibration sequences (default: 32)")
    p.add_argument("--calib-seq-len", type=int, default=512, help="tokens per calibration sequence (default: 512)")
    p.add_argument("--max-seq-len", type=int, default=None,
                   help="longest prompt plus output the engines accept (default: the model's limit, at most 32768)")
    p.add_argument("--kv-block-size", type=int, default=DEFAULT_BLOCK_SIZE,
                   help=f"tokens per paged KV-cache block (default: {DEFAULT_BLOCK_SIZE})")
    p.add_argument("--device", default="auto", help="device for calibration: auto, cpu, cuda, cuda:1 (default: auto)")
    p.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    p.add_argument("--deploy", default=None, metavar="TARGETS",
                   help="also write deployments next to the engines (OUTPUT/deploy/TARGET): comma-separated dynamo, "
                        "kubernetes, trtllm, or all (see `trtllm-mixquant deploy --help`)")
    add_deploy_arguments(p)
    return p


def default_model() -> Path:
    from trtllm_mixquant.assets import DEFAULT_MODEL_DIR

    return DEFAULT_MODEL_DIR


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    targets = []
    if args.deploy:
        from trtllm_mixquant.deploy.write import TARGETS

        targets = list(TARGETS) if args.deploy == "all" else args.deploy.split(",")
        if set(targets) - set(TARGETS):
            p.error(f"--deploy takes {', '.join(TARGETS)} or all (got {args.deploy!r})")
    from trtllm_mixquant.builder.calibration import CalibrationError
    from trtllm_mixquant.builder.pipeline import BuildOptions, build_engines
    from trtllm_mixquant.builder.source import SourceModelError
    from trtllm_mixquant.manifest import EnginePairError

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    model = args.model or default_model()
    opts = BuildOptions(
        model=model,
        output=args.output or Path("engines") / model.name,
        phase=args.phase,
        context_precision=args.context_precision,
        calib_file=args.calib_file,
        calib_samples=args.calib_samples,
        calib_seq_len=args.calib_seq_len,
        max_seq_len=args.max_seq_len,
        block_size=args.kv_block_size,
        device=args.device,
    )
    try:
        built = build_engines(opts)
    except (SourceModelError, CalibrationError, EnginePairError) as err:
        print(f"build.py: error: {err}", file=sys.stderr)
        return 2
    for phase, path in built.items():
        print(f"{phase:<10} engine: {path}")
    if targets:
        from trtllm_mixquant.deploy.cli import deploy
        from trtllm_mixquant.deploy.spec import DeployError

        try:
            written = deploy(args, opts.output, targets, opts.output / "deploy")
        except DeployError as err:
            print(f"build.py: error: {err} (no deployment was written)", file=sys.stderr)
            return 2
        print(f"deployment: {len(written)} files in {opts.output / 'deploy'}")
    return 0
