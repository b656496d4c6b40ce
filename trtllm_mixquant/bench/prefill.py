"""Prefill throughput: our BF16, FP8-context and NVFP4-emulated-context forward against Hugging Face
transformers BF16, in one process on one GPU, with random weights of a real architecture shape.

    trtllm-mixquant bench prefill --shape qwen3-8b --lengths 2048,8192,32768 [--eager]

Times one whole-prompt prefill of a single sequence (logits of the last token), with CUDA events,
after warm-up; prints the median and the ratios against our BF16 and against transformers. Our
forward runs as the engine runs it on a GPU (layers compiled with `CausalLM.compile_regions`) unless
`--eager`; transformers runs eagerly with its SDPA attention, as `from_pretrained` gives it.
"""

from __future__ import annotations

import argparse
import gc
import statistics

import torch

from trtllm_mixquant.formats import (
    dequantize_nvfp4,
    fp8_scale_from_amax,
    nvfp4_per_tensor_scale,
    quantize_fp8_per_tensor,
    quantize_nvfp4,
)
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
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def prefill_batch(t: int, block_size: int, device) -> StepBatch:
    pos = torch.arange(t)
    table = torch.arange(-(-t // block_size))[None]
    return StepBatch(torch.randint(0, 1000, (t,)), pos, pos.clone(), 0, torch.tensor([0, t]), torch.tensor([t]),
                     table, t, t, torch.tensor([t - 1])).to(device)


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


def ours(hf_model, lengths: list[int], eager: bool) -> dict[str, dict[int, float]]:
    cfg = ModelConfig.from_hf(hf_model.config.to_dict())
    device = torch.device("cuda")
    with torch.device(device):
        model = CausalLM(cfg).to(torch.bfloat16).eval()
    state = hf_model.state_dict()
    for name, module in model.named_modules():
        if isinstance(module, Linear):
            module.precise = DenseLinear(torch.cat([state[f"{p}.weight"] for p in module.checkpoint_names(name)]), None)
    model.load_state_dict({k: v for k, v in state.items() if "proj" not in k}, strict=False)
    layout = KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, "bfloat16", 32)
    kv = KVCache(layout, -(-max(lengths) // 32), device)
    if not eager:
        model.compile_regions()
    results = {}
    for variant in ("bf16", "fp8", "nvfp4-emulated"):
        if variant != "bf16":
            attach_quantized(model, variant.split("-")[0])
        results[variant] = {}
        for t in lengths:
            batch = prefill_batch(t, 32, device)
            batch.num_quantized = 0 if variant == "bf16" else t
            with torch.inference_mode():
                results[variant][t] = median_ms(lambda: model(batch, kv))
        for module in model.modules():
            if isinstance(module, Linear):
                module.quantized = None
        torch._dynamo.reset()
        gc.collect()
        torch.cuda.empty_cache()
    return results


def transformers_bf16(hf_model, lengths: list[int]) -> dict[int, float]:
    out = {}
    for t in lengths:
        ids = torch.randint(0, 1000, (1, t), device="cuda")
        with torch.inference_mode():
            out[t] = median_ms(lambda: hf_model(ids, logits_to_keep=1, use_cache=False))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant bench prefill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="qwen3-8b")
    p.add_argument("--lengths", default="2048,8192,32768")
    p.add_argument("--eager", action="store_true",
                   help="run our layers eagerly (default: compiled, as the engine runs them on a GPU)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench prefill needs a CUDA GPU")
    lengths = [int(x) for x in args.lengths.split(",")]
    torch.manual_seed(0)
    with torch.device("cuda"):
        hf = random_model("qwen3", args.shape, vocab_size=151936).eval()
    hf.config._attn_implementation = "sdpa"
    results = {"transformers-bf16": transformers_bf16(hf, lengths)}
    results.update({f"ours-{k}": v for k, v in ours(hf, lengths, args.eager).items()})
    card = torch.cuda.get_device_name()
    print(f"\nprefill of one sequence, {args.shape} random weights, {card}, torch {torch.__version__}, "
          f"ours {'eager' if args.eager else 'compiled'}")
    print(f"{'variant':<22}" + "".join(f"{t:>10} ms  tok/s  xBF16  xHF" for t in lengths))
    for name, row in results.items():
        cells = "".join(f"{row[t]:>13.1f} {t / row[t] * 1e3:>6.0f} {results['ours-bf16'][t] / row[t]:>6.2f} "
                        f"{results['transformers-bf16'][t] / row[t]:>4.2f}" for t in lengths)
        print(f"{name:<22}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
