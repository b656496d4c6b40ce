"""BF16 decode speed, ours against Hugging Face transformers in the same process, on one GPU with
random weights of a real shape: tokens/s of one sequence after a 2K and a 32K prompt, and generated
tokens/s with 8, 32 and 64 sequences of 2K context decoding together; next to the weight-read
roofline (the weights' bytes over the measured copy bandwidth: one token per full read).

    trtllm-mixquant bench decode --shape qwen3-8b

Ours is the engine's own step loop (`EngineCore`: compiled layers, CUDA-graph decode, paged
attention kernel); transformers is `generate` (greedy, its DynamicCache), the decode rate taken
from the difference between generating 1 and N tokens so that the prefill cancels.
"""

from __future__ import annotations

import argparse
import bisect
import time
from pathlib import Path

import torch

from trtllm_mixquant.bench.prefill import ours_model
from trtllm_mixquant.engine.base import EngineRequest
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.core import EngineCore
from trtllm_mixquant.engine.cuda_graphs import DECODE_BATCH_SIZES
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.help_format import HelpFormatter
from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.random_model import random_model


def copy_bandwidth(nbytes: int = 1 << 30) -> float:
    """Bytes/s of memory traffic in a device-to-device copy (each byte read once and written once)."""
    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_()
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        b.copy_(a)
    torch.cuda.synchronize()
    return 2 * 10 * nbytes / (time.perf_counter() - start)


def ours(engine: EngineCore, prompt_len: int, batch: int, new: int) -> float:
    """Generated tokens/s while `batch` sequences of `prompt_len` decode `new` tokens each (prefill excluded)."""
    for i in range(batch):
        ids = torch.randint(1000, 100000, (prompt_len,)).tolist()
        engine.add(EngineRequest(f"b{batch}-{prompt_len}-{i}", ids, SamplingParams(max_tokens=new, ignore_eos=True), 0))
    generated, start = 0, None
    while engine.has_work():
        updates = engine.step()
        if start is None and len(updates) == batch:  # every prompt is done: decode from here
            torch.cuda.synchronize()
            start, generated = time.perf_counter(), 0
            continue
        generated += sum(len(u.token_ids) for u in updates)
    return generated / (time.perf_counter() - start)


def transformers_rate(hf, prompt_len: int, batch: int, new: int) -> float:
    ids = torch.randint(1000, 100000, (batch, prompt_len), device="cuda")

    def run(n: int) -> float:
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            hf.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        torch.cuda.synchronize()
        return time.perf_counter() - start
    run(2)
    return batch * (new - 1) / (run(new) - run(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant bench decode", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--shape", default="qwen3-8b")
    p.add_argument("--new-tokens", type=int, default=128, help="tokens each sequence decodes (ours)")
    p.add_argument("--hf-new-tokens", type=int, default=32, help="tokens each sequence decodes (transformers)")
    p.add_argument("--cases", default="1x2048,1x32768,8x2048,32x2048,64x2048", help="sequences x prompt tokens")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench decode needs a CUDA GPU")
    cases = [tuple(int(x) for x in c.split("x")) for c in args.cases.split(",")]
    torch.manual_seed(0)
    with torch.device("cuda"):
        hf = random_model("qwen3", args.shape, vocab_size=151936).eval()
    hf.config._attn_implementation = "sdpa"
    weight_bytes = sum(t.numel() * t.element_size() for t in hf.state_dict().values())
    roofline = copy_bandwidth() / weight_bytes  # one full read of the weights per decode step
    model, cfg = ours_model(hf)
    longest = max(b * (n + args.new_tokens) for b, n in cases)
    layout = KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim)
    engine = EngineCore(model, layout, max(n for _, n in cases) + args.new_tokens, set(),
                        layout.blocks_for(longest) + 64, EngineConfig(Path("."), max_num_seqs=64, max_step_tokens=32768))
    # Compile, and capture the graph of every batch size a case passes through, outside the timing:
    # sequences that finish at different steps leave smaller batches at the end (32 prompts prefill
    # over three steps, so their last steps decode 16 and then 1 sequence).
    largest = max(b for b, _ in cases)
    for batch in DECODE_BATCH_SIZES[:bisect.bisect_left(DECODE_BATCH_SIZES, largest) + 1]:
        ours(engine, 128, batch, 4)
    card = torch.cuda.get_device_name()
    print(f"\nBF16 decode, {args.shape} random weights ({weight_bytes / 1e9:.1f} GB), {card}, torch {torch.__version__}; "
          f"roofline {roofline:.0f} tokens/s for one sequence (weights read once per step at the copy bandwidth)")
    print(f"{'sequences x context':>20} {'ours tok/s':>11} {'transformers tok/s':>19} {'x transformers':>15} "
          f"{'of roofline x batch':>20}")
    for batch, prompt_len in cases:
        mine = ours(engine, prompt_len, batch, args.new_tokens)
        theirs = transformers_rate(hf, prompt_len, batch, args.hf_new_tokens)
        print(f"{f'{batch} x {prompt_len}':>20} {mine:>11.1f} {theirs:>19.1f} {mine / theirs:>15.1f} "
              f"{mine / (roofline * batch):>20.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
