"""KV-cache transfer through torch.distributed (gloo on CPU, NCCL between GPUs): the fallback where
NIXL is not installed.

send/recv are two-sided, so the receiver must post an `irecv` for every send. The sender announces
each send in the receiver's queue on the group's TCPStore (the store torch.distributed meets on);
the receiver pops announcements as it polls and posts the matching receive. Announcements from one
sender come in the order its sends were issued, which is the order point-to-point messages between
two ranks are matched in. A request's blocks travel as one staging tensor
[2, layers, n, block_size, heads, D] per receiving rank (its heads of ours: `base.head_moves`) and
are scattered into the blocks and heads the receiver `expect`ed them in (an announcement nobody
expects is received and dropped, so the pair stays in step). A receiving rank counts the arrivals
of a request until it has all its heads.
A gloo send or receive reports completion only through `wait()`, so a helper thread waits for it;
NCCL work is polled with `is_completed()` (its `wait()` only orders the CUDA stream).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import torch
import torch.distributed as dist

from trtllm_mixquant.ports import free_port
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.transfer.base import Arrivals, PeerInfo, moved_bytes, outgoing_moves, pool_info, rank_infos


class TorchDistKVTransport:
    replaceable = False  # the process group is fixed at start: a dead rank cannot be replaced alone
    supports_pull = False
    joins_world = True  # its ranks are torch.distributed's world (tensor-parallel groups live inside it)

    def __init__(self, name: str, kv: KVCache, rank: int, world_size: int, host: str, port: int):
        self.kv = kv
        device = kv.k_blocks.device
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        self.store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=timedelta(seconds=600))
        if not dist.is_initialized():
            dist.init_process_group(self.backend, store=self.store, rank=rank, world_size=world_size)
        self.rank = rank
        self.waiters = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kv-wait")
        self.info = pool_info(name, kv, rank=rank)
        self.peers: dict[str, PeerInfo] = {}
        self.expected: dict[str, list[int]] = {}  # request id -> destination blocks
        self.sending: dict[str, list[tuple[Callable[[], bool], torch.Tensor]]] = {}
        self.receiving: list[tuple[str, Callable[[], bool], torch.Tensor, int, int]] = []  # (id, done, staging,
        # first head, arrivals)
        self.arrivals = Arrivals()  # staging tensors landed so far

    @classmethod
    def available(cls) -> bool:
        return dist.is_available()

    @classmethod
    def plan(cls, num_workers: int, host: str) -> list[dict]:
        port = free_port(host)
        return [{"rank": i, "world_size": num_workers, "host": host, "port": port} for i in range(num_workers)]

    def connect(self, peer: PeerInfo) -> None:
        for rank in rank_infos(peer):
            self.info.check_compatible(rank)
        self.peers[peer.name] = peer

    def expect(self, request_id: str, dst_blocks: list[int]) -> None:
        self.expected[request_id] = list(dst_blocks)

    def forget(self, request_id: str) -> None:
        self.expected.pop(request_id, None)
        self.arrivals.forget(request_id)

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        """Send our heads of `src_blocks` to the ranks of `peer` that hold them (none: done at once)."""
        ranks, moves = outgoing_moves(self.info, self.peers[peer])
        index = torch.tensor(src_blocks, device=self.kv.k_blocks.device)
        sends = []
        for mv in moves:
            heads = slice(mv.src_head, mv.src_head + mv.count)  # only these heads are copied out
            staging = torch.stack([self.kv.k_blocks[:, :, :, heads].index_select(1, index),
                                   self.kv.v_blocks[:, :, :, heads].index_select(1, index)])
            dst = ranks[mv.dst_rank].address["rank"]
            self.store.queue_push(f"kv/{dst}", json.dumps([request_id, self.rank, len(src_blocks), mv.dst_head,
                                                           mv.count, mv.arrivals]))
            sends.append((self._watch(dist.isend(staging, dst=dst)), staging))
        self.sending[request_id] = sends
        return moved_bytes(self.kv, len(src_blocks), moves)

    def _watch(self, work) -> Callable[[], bool]:
        """A no-wait predicate that turns true once `work` has completed."""
        if self.backend == "gloo":
            return self.waiters.submit(work.wait).done
        return work.is_completed

    def _post_announced(self) -> None:
        queue = f"kv/{self.rank}"
        for _ in range(self.store.queue_len(queue)):
            request_id, source, num_blocks, first_head, count, arrivals = json.loads(self.store.queue_pop(queue, False))
            k = self.kv.k_blocks
            staging = torch.empty((2, k.shape[0], num_blocks, k.shape[2], count, k.shape[4]), dtype=k.dtype,
                                  device=k.device)
            self.receiving.append((request_id, self._watch(dist.irecv(staging, src=source)), staging, first_head,
                                   arrivals))

    def poll_sent(self) -> list[tuple[str, bool]]:
        done = [rid for rid, sends in self.sending.items() if all(finished() for finished, _ in sends)]
        for rid in done:
            del self.sending[rid]
        return [(rid, True) for rid in done]

    def poll_received(self) -> list[str]:
        self._post_announced()
        landed, waiting = [], []
        for item in self.receiving:
            request_id, finished, staging, first_head, arrivals = item
            if not finished():
                waiting.append(item)
                continue
            dst = self.expected.get(request_id)
            if dst is None:  # nobody expects it (any more): dropped
                continue
            index = torch.tensor(dst, device=staging.device)
            heads = slice(first_head, first_head + staging.shape[4])
            self.kv.k_blocks[:, index, :, heads] = staging[0]
            self.kv.v_blocks[:, index, :, heads] = staging[1]
            if self.arrivals.land(request_id, arrivals):
                del self.expected[request_id]
                landed.append(request_id)
        self.receiving = waiting
        return landed
