"""`EngineConfig`: how one engine is run, the root of the config tree (orchestrator and server
configs nest it), and its command-line flags, defined once for every command that runs an engine.

Importing this module does not import torch, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from trtllm_mixquant.engine.phase import MODES, check_mode

DTYPES = ("auto", "bfloat16", "float16", "float32")
FP8_ATTENTION = ("off", "auto", "all")  # `runtime.attention`: where the quantized prompt rows attend in FP8


@dataclass(frozen=True)
class EngineConfig:
    engine_dir: Path  # a build.py output folder (NAME/context, NAME/generation) or a Hugging Face folder
    mode: str = "mixquant"  # requests that do not ask for one; "bf16" loads no quantized weights
    num_precise_prompt_tokens: int = 1  # k: prompt tokens at the end prefilled in BF16 in mixquant mode
    device: str = "auto"  # "auto" (first GPU, else CPU), "cpu", "cuda:1", ...
    dtype: str = "auto"  # activations and KV cache: auto is bfloat16 (float32 on CPUs with slow BF16 GEMMs)
    kv_cache_blocks: int | None = None  # None: room for four sequences of the maximum length
    max_num_seqs: int = 64  # sequences batched in one step
    max_step_tokens: int = 4096  # tokens computed in one step (chunked prefill beyond)
    cuda_graphs: bool = True  # GPU: replay decode steps, and the pieces of steps of <= 2,048 tokens, from CUDA graphs
    compile_regions: bool = True  # GPU: torch.compile each layer's two regions around attention
    fp8_attention: str = "off"  # the quantized prompt rows' attention in FP8 too: "auto" in steps with enough
    # attention for it to pay (`runtime.attention.FP8_ATTENTION_MIN_PAIRS`), "all" in every prompt step
    backend: str = "pytorch"  # which engine implementation runs it (`trtllm_mixquant.engine.BACKENDS`)
    tensor_parallel_size: int = 1  # ranks (one GPU each) the model is split over (`engine.ranks`)
    async_scheduling: bool | None = None  # schedule step n + 1 while step n runs (`engine.overlap`); None: on one GPU

    def __post_init__(self):
        object.__setattr__(self, "engine_dir", Path(self.engine_dir))
        check_mode(self.mode)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (got {self.dtype!r})")
        if self.fp8_attention not in FP8_ATTENTION:
            raise ValueError(f"fp8_attention must be one of {', '.join(FP8_ATTENTION)} (got {self.fp8_attention!r})")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be at least 1 (got {self.tensor_parallel_size})")
        if self.async_scheduling and self.tensor_parallel_size > 1:
            raise ValueError("asynchronous scheduling runs on one rank only: drop --async-scheduling, or run "
                             "with --tensor-parallel-size 1")

    def eager(self) -> EngineConfig:
        """No torch.compile and no CUDA graphs (`--enforce-eager`): starts in seconds, steps run slower."""
        return replace(self, cuda_graphs=False, compile_regions=False)


def add_engine_arguments(p: argparse.ArgumentParser, device: bool = True) -> None:
    """The flags of `EngineConfig` (engine_dir is each command's own positional argument)."""
    d = EngineConfig(Path("."))
    p.add_argument("--mode", choices=MODES, default=d.mode,
                   help="mixquant: quantized prefill, BF16 decode; bf16: BF16 everywhere; quantized: the context "
                        "engine's precision everywhere (requests may override it)")
    p.add_argument("--num-precise-prompt-tokens", type=int, default=d.num_precise_prompt_tokens,
                   help="prompt tokens at the end prefilled in BF16 in mixquant mode")
    if device:
        p.add_argument("--device", default=d.device, help="auto (first GPU, else CPU), cpu, cuda, cuda:1")
    p.add_argument("--dtype", choices=DTYPES, default=d.dtype,
                   help="activation and KV-cache dtype; auto: bfloat16, or float32 on a CPU without fast BF16 "
                        "(float32 also makes outputs comparable with an fp32 reference)")
    p.add_argument("--kv-cache-blocks", type=int, default=None,
                   help="KV-cache blocks (default: room for four sequences of the maximum length)")
    p.add_argument("--max-num-seqs", type=int, default=d.max_num_seqs, help="sequences batched in one step")
    p.add_argument("--max-step-tokens", type=int, default=d.max_step_tokens,
                   help="tokens computed in one step; longer prompts are prefilled in chunks")
    p.add_argument("--enforce-eager", action="store_true",
                   help="on a GPU, run without torch.compile and CUDA graphs: starts in seconds, steps run slower")
    p.add_argument("--tensor-parallel-size", "--tp", type=int, default=d.tensor_parallel_size,
                   help="split the model over this many ranks, one GPU each (on CPU: processes)")
    p.add_argument("--async-scheduling", action=argparse.BooleanOptionalAction, default=None,
                   help="schedule and launch each step while the GPU still runs the one before (default: on "
                        "for one GPU, off on the CPU and with tensor parallelism)")
    add_fp8_attention_argument(p, d.fp8_attention)


def add_fp8_attention_argument(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--fp8-attention", nargs="?", choices=FP8_ATTENTION, default=default, const="auto",
                   help="the quantized prompt tokens' attention in FP8 as well (the KV cache stays BF16): auto "
                        "(the bare flag) in steps long enough for it to be faster (a 4K-token prompt, a 512-token "
                        "turn over 32K cached); all: in every prompt step; off")


def engine_config_from_args(args: argparse.Namespace, engine_dir: Path) -> EngineConfig:
    config = EngineConfig(engine_dir, mode=args.mode, num_precise_prompt_tokens=args.num_precise_prompt_tokens,
                          device=getattr(args, "device", "auto"), dtype=args.dtype,
                          kv_cache_blocks=args.kv_cache_blocks, max_num_seqs=args.max_num_seqs,
                          max_step_tokens=args.max_step_tokens, fp8_attention=args.fp8_attention,
                          tensor_parallel_size=args.tensor_parallel_size, async_scheduling=args.async_scheduling)
    return config.eager() if args.enforce_eager else config
