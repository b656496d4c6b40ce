"""Prefill throughput: our BF16, FP8-context (with BF16 or FP8 attention) and NVFP4-emulated-context forward against Hugging Face
transformers BF16, in one process on one GPU, with random weights of a real architecture shape.

    trtllm-mixquant bench prefill --shape qwen3-8b --lengths 2048,8192,32768,30720+2048 [--eager]

Times the prefill of one sequence (logits of its last token), with CUDA events, after warm-up;
prints the median and the ratios against our BF16 and against transformers. A length `N` is a whole
prompt of N tokens; `C+N` is an agent's next turn: N new tokens after C tokens already in the KV
cache (transformers: its DynamicCache holding C tokens, cropped back after each run). Our
forward runs as the engine runs it on a GPU (layers compiled with `CausalLM.compile_regions`) unless
`--eager`; transformers runs eagerly with its SDPA attention, as `from_pretrained` gives it.
"""

from __future__ import annotations

import argparse
import gc
import statistics

import torch

from trtllm_mixquant.engine.cuda_graphs import PiecewiseGraphs
from trtllm_mixquant.formats import (
    dequantize_nvfp4,
    fp8_scale_from_amax,
    nvfp4_per_tensor_scale,
    quantize_fp8_per_tensor,
    quantize_nvfp4,
)
from trtllm_mixquant.help_format import HelpFormatter
from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.random_model import random_model
from trtllm_mixquant.runtime.batch import StepBatch
from trtllm_mixquant.runtime.config import ModelConfig
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.layers.linear import DenseLinear, Linear
from trtllm_mixquant.runtime.model import CausalLM
from trtllm_mixquant.runtime.quantized import Fp8Linear, Nvfp4EmulatedLinear

ACT_AMAX = 8.0  # a plausible calibrated activation amax; the value does not change the speed


def median_ms(fn, warmup: int = 3, reps: int = 7) -> float:
    """Median of `reps` timed calls, with Python's garbage collector paused as `timeit` does: short
    prefills are bound by the CPU launching kernels, where a collection pass lands in the timing."""
    for _ in range(warmup):
        fn()
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    finally:
        gc.enable()
    return statistics.median(times)


def parse_case(text: str) -> tuple[int, int]:
    """"N" -> (0, N) a whole prompt; "C+N" -> (C, N) N new tokens after C cached ones."""
    cached, _, new = text.strip().rpartition("+")
    return int(cached or 0), int(new)


def prefill_batch(cached: int, new: int, block_size: int, device) -> StepBatch:
    """N new tokens of one sequence whose first C are already in blocks 0, 1, ... (slot = position)."""
    total = cached + new
    pos = torch.arange(cached, total)
    table = torch.arange(-(-total // block_size))[None]
    return StepBatch(torch.randint(0, 1000, (new,)), pos, pos.clone(), 0, torch.tensor([0, new]), torch.tensor([total]),
                     table, new, total, torch.tensor([new - 1]), total).to(device)


def attach_quantized(model: CausalLM, precision: str) -> None:
    for module in model.modules():
        if isinstance(module, Linear):
            w = module.precise.weight
            if precision == "fp8":
                w_scale = fp8_scale_from_amax(w.abs().amax())
                module.quantized = Fp8Linear(quantize_fp8_per_tensor(w, w_scale), w_scale,
                                             fp8_scale_from_amax(torch.tensor(ACT_AMAX, device=w.device)), None, w.dtype)
            else:
                w_scale = nvfp4_per_tensor_scale(w.abs().amax())
                weight = dequantize_nvfp4(*quantize_nvfp4(w, w_scale), w_scale, w.dtype)
                module.quantized = Nvfp4EmulatedLinear(
                    weight, nvfp4_per_tensor_scale(torch.tensor(ACT_AMAX, device=w.device)), None)


def ours_model(hf_model) -> tuple[CausalLM, ModelConfig]:
    """Our model with the BF16 weights of `hf_model` (on its GPU), q/k/v and gate/up fused."""
    cfg = ModelConfig.from_hf(hf_model.config.to_dict())
    with torch.device("cuda"):
        model = CausalLM(cfg).to(torch.bfloat16).eval()
    state = hf_model.state_dict()
    for name, module in model.named_modules():
        if isinstance(module, Linear):
            module.precise = DenseLinear(torch.cat([state[f"{p}.weight"] for p in module.checkpoint_names(name)]), None)
    model.load_state_dict({k: v for k, v in state.items() if "proj" not in k}, strict=False)
    return model, cfg


VARIANTS = ("bf16", "fp8", "fp8+fp8-attention", "nvfp4-emulated")


def ours(hf_model, cases: list[tuple[int, int]], eager: bool,
         variants: tuple[str, ...] = VARIANTS) -> dict[str, dict[tuple[int, int], float]]:
    device = torch.device("cuda")
    model, cfg = ours_model(hf_model)
    layout = KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim)
    kv = KVCache(layout, layout.blocks_for(max(c + n for c, n in cases)), device)
    if not eager:
        model.compile_regions()
    results = {}
    for variant in variants:
        if variant != "bf16":
            attach_quantized(model, variant.split("-")[0].split("+")[0])
        results[variant] = {}
        graphs = None if eager else PiecewiseGraphs(model, kv, max(n for _, n in cases))
        for cached, new in cases:
            batch = prefill_batch(cached, new, 32, device)
            batch.num_quantized = 0 if variant == "bf16" else new
            batch.num_quantized_segments = int(variant != "bf16")
            batch.fp8_attention = variant.endswith("fp8-attention")
            step = graphs if graphs is not None and graphs.key(batch) is not None else lambda b: model(b, kv)
            with torch.inference_mode():
                results[variant][cached, new] = median_ms(lambda: step(batch))
        del graphs
        for module in model.modules():
            if isinstance(module, Linear):
                module.quantized = None
        torch._dynamo.reset()
        gc.collect()
        torch.cuda.empty_cache()
    return results


def transformers_bf16(hf_model, cases: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    out = {}
    for cached, new in cases:
        ids = torch.randint(0, 1000, (1, new), device="cuda")
        with torch.inference_mode():
            if not cached:
                out[cached, new] = median_ms(lambda: hf_model(ids, logits_to_keep=1, use_cache=False))
                continue
            cache = hf_model(torch.randint(0, 1000, (1, cached), device="cuda"), use_cache=True).past_key_values

            def turn():
                hf_model(ids, past_key_values=cache, logits_to_keep=1, use_cache=True)
                cache.crop(-new)  # drop the new tokens again (negative: how many to remove)

            out[cached, new] = median_ms(turn)
            del cache
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant bench prefill", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--shape", default="qwen3-8b")
    p.add_argument("--lengths", default="2048,8192,32768,30720+2048",
                   help="comma-separated: N (a whole prompt of N tokens) or C+N (N new tokens after C cached)")
    p.add_argument("--eager", action="store_true",
                   help="run our layers eagerly (default: compiled, as the engine runs them on a GPU)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of " + ", ".join(VARIANTS))
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench prefill needs a CUDA GPU")
    cases = [parse_case(x) for x in args.lengths.split(",")]
    torch.manual_seed(0)
    with torch.device("cuda"):
        hf = random_model("qwen3", args.shape, vocab_size=151936).eval()
    hf.config._attn_implementation = "sdpa"
    results = {"transformers-bf16": transformers_bf16(hf, cases)}
    variants = tuple(args.variants.split(","))
    results.update({f"ours-{k}": v for k, v in ours(hf, cases, args.eager, variants).items()})
    card = torch.cuda.get_device_name()
    print(f"\nprefill of one sequence, {args.shape} random weights, {card}, torch {torch.__version__}, "
          f"ours {'eager' if args.eager else 'compiled, pieces of steps <= 2,048 tokens graphed'}")
    labels = {case: (f"{case[0]}+{case[1]}" if case[0] else str(case[1])) for case in cases}
    print(f"{'variant':<22}" + "".join(f"{labels[c]:>13} ms  tok/s  xBF16  xHF" for c in cases))
    for name, row in results.items():
        cells = "".join(f"{row[c]:>16.1f} {c[1] / row[c] * 1e3:>6.0f} {results['ours-bf16'][c] / row[c]:>6.2f} "
                        f"{results['transformers-bf16'][c] / row[c]:>4.2f}" for c in cases)
        print(f"{name:<22}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
