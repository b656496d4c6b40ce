"""KV-cache transfer through torch.distributed (gloo on CPU, NCCL between GPUs): the fallback
where NIXL is not installed.

send/recv are two-sided, so the receiver posts its `irecv` when it learns that a transfer is
starting (the context worker announces it, and the orchestrator forwards the announcement to the
generation worker); announcements from one sender arrive in the order its sends were issued, which
is the order point-to-point messages between two ranks are matched in. A request's blocks travel
as one staging tensor [2, layers, n, block_size, Hkv, D] and are scattered into the reserved blocks.
A gloo send or receive only reports completion through `wait()`, so a helper thread waits for it;
NCCL work is polled with `is_completed()` (its `wait()` only orders the CUDA stream).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.distributed as dist

from trtllm_mixquant.disagg.kv_transfer import KVPoolInfo
from trtllm_mixquant.runtime.kv_cache import KVCache


class TorchDistKVTransfer:
    def __init__(self, name: str, kv: KVCache, rank: int, world_size: int, init_method: str):
        self.kv = kv
        device = kv.k_blocks.device
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(self.backend, init_method=init_method, rank=rank, world_size=world_size)
        self.waiters = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kv-wait")
        self.info = KVPoolInfo(
            agent_name=name, agent_metadata=b"", layout=kv.layout, dtype=str(kv.k_blocks.dtype).removeprefix("torch."),
            k_base=0, v_base=0, num_blocks=kv.k_blocks.shape[1],
            block_bytes=kv.k_blocks[0, 0].numel() * kv.k_blocks.element_size(),
            mem_type="VRAM" if device.type == "cuda" else "DRAM", device_id=device.index or 0, rank=rank)
        self.peers: dict[str, KVPoolInfo] = {}
        self.sending: dict[str, tuple[Callable[[], bool], torch.Tensor]] = {}
        self.receiving: dict[str, tuple[Callable[[], bool], torch.Tensor, torch.Tensor]] = {}

    def connect(self, peer: KVPoolInfo) -> None:
        self.info.check_compatible(peer)
        self.peers[peer.agent_name] = peer

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        index = torch.tensor(src_blocks, device=self.kv.k_blocks.device)
        staging = torch.stack([self.kv.k_blocks.index_select(1, index), self.kv.v_blocks.index_select(1, index)])
        self.sending[request_id] = (self._watch(dist.isend(staging, dst=self.peers[peer].rank)), staging)
        return staging.numel() * staging.element_size()

    def expect(self, request_id: str, source_rank: int, dst_blocks: list[int]) -> None:
        """Post the receive of a transfer the sender has announced."""
        k = self.kv.k_blocks
        staging = torch.empty((2, k.shape[0], len(dst_blocks), *k.shape[2:]), dtype=k.dtype, device=k.device)
        index = torch.tensor(dst_blocks, device=k.device)
        self.receiving[request_id] = (self._watch(dist.irecv(staging, src=source_rank)), staging, index)

    def _watch(self, work) -> Callable[[], bool]:
        """A no-wait predicate that turns true once `work` has completed."""
        if self.backend == "gloo":
            return self.waiters.submit(work.wait).done
        return work.is_completed

    def poll_sent(self) -> list[tuple[str, bool]]:
        done = [rid for rid, (finished, _) in self.sending.items() if finished()]
        for rid in done:
            del self.sending[rid]
        return [(rid, True) for rid in done]

    def poll_received(self) -> list[str]:
        done = [rid for rid, (finished, _, _) in self.receiving.items() if finished()]
        for rid in done:
            _, staging, index = self.receiving.pop(rid)
            self.kv.k_blocks.index_copy_(1, index, staging[0])
            self.kv.v_blocks.index_copy_(1, index, staging[1])
        return done
