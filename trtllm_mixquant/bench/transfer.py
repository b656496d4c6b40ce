"""NIXL KV transfers between pools in one process (host memory, or one GPU): a request's KV moved
from a context worker of tensor-parallel size m to a generation worker of size n, every rank its
own NIXL agent as in the workers, against a plain copy of the same bytes on that device. The first
send of each pairing is reported apart (UCX endpoints, and the page faults of fresh buffers).

    trtllm-mixquant bench transfer --tokens 2048,8192 --pairs 1:1,1:2,2:1,2:4
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from trtllm_mixquant.help_format import HelpFormatter
from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.runtime.kv_cache import KVCache


def copy_seconds(nbytes: int, device: torch.device, reps: int) -> float:
    """Median seconds of copying `nbytes` once within `device`."""
    a = torch.empty(nbytes, dtype=torch.uint8, device=device).random_(0, 255)
    b = torch.empty_like(a)
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        b.copy_(a)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def worker(layout: KVCacheLayout, tp: int, name: str, num_blocks: int, device: torch.device):
    """The ranks' transports of a worker of `tp` ranks, and the `PeerInfo` its peers see."""
    from trtllm_mixquant.transfer.base import group_info
    from trtllm_mixquant.transfer.nixl import NixlKVTransport

    ranks = [NixlKVTransport(f"{name}-{r}", KVCache(replace(layout, tp_size=tp, tp_rank=r), num_blocks, device))
             for r in range(tp)]
    return ranks, ranks[0].info if tp == 1 else group_info(name, [t.info for t in ranks])


def connected(layout: KVCacheLayout, context_tp: int, generation_tp: int, blocks: tuple[int, int],
              device: torch.device, tag: str = ""):
    """A context worker of `context_tp` ranks (random KV in its `blocks[0]` blocks) and a generation
    worker of `generation_tp` ranks (`blocks[1]`), connected: (senders, receivers, the receivers' group)."""
    name = f"{context_tp}to{generation_tp}{tag}"
    senders, sending = worker(layout, context_tp, f"ctx{name}", blocks[0], device)
    receivers, receiving = worker(layout, generation_tp, f"gen{name}", blocks[1], device)
    for s in senders:
        s.kv.k_blocks.normal_()
        s.kv.v_blocks.normal_()
        s.connect(receiving)
    for r in receivers:
        r.connect(sending)
    return senders, receivers, receiving


def send_seconds(layout: KVCacheLayout, tokens: int, context_tp: int, generation_tp: int, device: torch.device,
                 reps: int) -> tuple[float, float, int]:
    """(first send s, median of the next `reps` s, bytes) of one request's KV from TP m to TP n."""
    blocks = tokens // layout.block_size
    senders, receivers, receiving = connected(layout, context_tp, generation_tp, (blocks + 1, blocks + 1), device,
                                              f"-{tokens}")
    times, nbytes = [], 0
    for rep in range(reps + 1):
        for r in receivers:  # as a generation worker does when it reserves the blocks
            r.expect(f"r{rep}", list(range(blocks)))
        start = time.perf_counter()
        nbytes = sum(s.send(f"r{rep}", list(range(blocks)), receiving.name, list(range(blocks))) for s in senders)
        sent = received = 0
        while sent < context_tp or received < generation_tp:
            sent += sum(len(s.poll_sent()) for s in senders)
            received += sum(len(r.poll_received()) for r in receivers)
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:]), nbytes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant bench transfer", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--tokens", default="2048,8192", help="prompt lengths whose KV moves")
    p.add_argument("--pairs", default="1:1,1:2,2:1", help="context TP : generation TP pairings")
    p.add_argument("--device", default="cpu", help="cpu (host memory) or cuda (both pools on one GPU)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--layers", type=int, default=36, help="KV shape; the defaults are Qwen3-8B's")
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--block-size", type=int, default=32)
    args = p.parse_args(argv)
    from trtllm_mixquant.transfer.nixl import NixlKVTransport

    if not NixlKVTransport.available():
        raise SystemExit("bench transfer needs NIXL: pip install 'trtllm-mixquant[nixl]'")
    device = torch.device(args.device)
    layout = KVCacheLayout(args.layers, args.kv_heads, args.head_dim, "bfloat16", args.block_size)
    pairs = [tuple(int(x) for x in pair.split(":")) for pair in args.pairs.split(",")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "host memory"
    print(f"NIXL KV transfer in one process, {name}; KV of {args.layers} layers x {args.kv_heads} heads x "
          f"{args.head_dim}, bf16, blocks of {args.block_size}")
    print(f"{'tokens':>7} {'TP':>5} {'MiB':>6} {'first ms':>9} {'ms':>8} {'GB/s':>6} {'copy GB/s':>9} {'vs copy':>7}")
    for tokens in (int(t) for t in args.tokens.split(",")):
        for context_tp, generation_tp in pairs:
            first, seconds, nbytes = send_seconds(layout, tokens, context_tp, generation_tp, device, args.reps)
            copy = nbytes / copy_seconds(nbytes, device, args.reps) / 1e9
            rate = nbytes / seconds / 1e9
            print(f"{tokens:>7} {f'{context_tp}:{generation_tp}':>5} {nbytes / 2**20:>6.0f} {first * 1e3:>9.1f} "
                  f"{seconds * 1e3:>8.1f} {rate:>6.2f} {copy:>9.2f} {rate / copy:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
