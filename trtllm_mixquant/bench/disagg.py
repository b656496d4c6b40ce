"""Disaggregated serving on two GPUs: context worker on GPU 0 (FP8), generation worker on GPU 1
(BF16), KV moved GPU to GPU by NIXL. Reports the time to first token split into queue, prefill,
transfer and first decode step, and the KV transfer bandwidth against the measured copy bandwidth.

    python -m trtllm_mixquant.bench.disagg --lengths 8192,32768 --engines /tmp/engines-8b
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
from pathlib import Path

import torch

from trtllm_mixquant.bench.random_engines import write_random_engines
from trtllm_mixquant.disagg.config import OrchestratorConfig
from trtllm_mixquant.disagg.orchestrator import Orchestrator
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.frontend.async_engine import GenerateRequest
from trtllm_mixquant.help_format import HelpFormatter


def copy_bandwidth(src: str, dst: str, nbytes: int = 1 << 30) -> float:
    """GB/s of a device-to-device copy (bytes moved once)."""
    a = torch.empty(nbytes, dtype=torch.uint8, device=src).random_()
    b = torch.empty(nbytes, dtype=torch.uint8, device=dst)
    for _ in range(2):
        b.copy_(a)
    torch.cuda.synchronize(src), torch.cuda.synchronize(dst)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        b.copy_(a)
    end.record()
    torch.cuda.synchronize()
    return 5 * nbytes / (start.elapsed_time(end) / 1e3) / 1e9


async def measure(engines: str, lengths: list[int], reps: int) -> list[dict]:
    blocks = 2 * max(lengths) // 32 + 64
    engine = EngineConfig(Path(engines), kv_cache_blocks=blocks, max_step_tokens=max(lengths), max_num_seqs=8)
    orch = Orchestrator(OrchestratorConfig(engine, devices=("cuda:0", "cuda:1")))
    await orch.start()
    rng = random.Random(0)
    rows = []
    try:
        for t in [1024] + lengths:  # the first length warms up (CUDA graphs, cuBLAS, UCX endpoints)
            runs = []
            for _ in range(reps):
                prompt = [rng.randrange(1000, 150000) for _ in range(t)]
                stream = await orch.submit(GenerateRequest(prompt, SamplingParams(max_tokens=2, ignore_eos=True)))
                await stream.result()
                runs.append((stream.timings.ttft_breakdown(), stream.timings.kv_bytes))
            if t == 1024:
                continue
            row = {"tokens": t, "kv_bytes": runs[0][1]}
            for key in ("queue", "prefill", "transfer", "first_decode", "ttft"):
                row[key] = statistics.median(r[0][key] for r in runs)
            rows.append(row)
    finally:
        await orch.shutdown()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant bench disagg", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--engines", default="/tmp/engines-qwen3-8b")
    p.add_argument("--lengths", default="8192,32768")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    if torch.cuda.device_count() < 2:
        raise SystemExit("bench disagg needs two CUDA GPUs")
    lengths = [int(x) for x in args.lengths.split(",")]
    write_random_engines(args.engines, max_seq_len=max(lengths) + 64)
    peer = copy_bandwidth("cuda:0", "cuda:1")
    local = copy_bandwidth("cuda:0", "cuda:0")
    rows = asyncio.run(measure(args.engines, lengths, args.reps))
    names = [torch.cuda.get_device_name(i) for i in range(2)]
    print(f"\ndisaggregated: context (FP8) on GPU 0, generation (BF16) on GPU 1 — {names}; Qwen3-8B shapes, random weights")
    print(f"copy bandwidth: GPU0->GPU1 {peer:.1f} GB/s, GPU0->GPU0 {local:.1f} GB/s (bytes moved once)")
    print(f"{'tokens':>7} {'KV MiB':>8} {'queue ms':>9} {'prefill ms':>10} {'transfer ms':>11} {'1st decode ms':>13} "
          f"{'TTFT ms':>8} {'KV GB/s':>8} {'vs copy':>8}")
    for r in rows:
        bw = r["kv_bytes"] / r["transfer"] / 1e9
        print(f"{r['tokens']:>7} {r['kv_bytes'] / 2**20:>8.0f} {r['queue'] * 1e3:>9.1f} {r['prefill'] * 1e3:>10.1f} "
              f"{r['transfer'] * 1e3:>11.1f} {r['first_decode'] * 1e3:>13.1f} {r['ttft'] * 1e3:>8.1f} {bw:>8.1f} "
              f"{bw / peer:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
