"""Staging buffers for KV heads that go to a tensor-parallel rank of another size than ours.

Our pool's rows are [block_size, Hkv, D] per block and layer; a rank holding `count` of those heads
has rows of [block_size, count, D]. Written in place, that is one small descriptor per token, head
range and layer. Gathered first into a buffer, they move as whole rows where the receiving rank
holds just these heads (a descriptor per run of blocks and layer), or as one head-major
[count, block_size, D] slab per block and layer where other senders fill the rest of its rows; the
receiver then turns those blocks token-major (`token_major`). `nixl.NixlKVTransport` uses both.

A buffer is registered with NIXL and held until its request's writes end. In host memory it is then
kept for the next request (a fresh one costs its page faults: 0.6 against 9.7 GB/s gathering here),
so a worker holds as much as it ever staged at once; on a GPU it goes back to torch's caching
allocator.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.transfer.base import block_runs


class Buffer(NamedTuple):
    registration: object  # NIXL's registration of k and v
    k: torch.Tensor  # [layers, capacity, block_size, count, D]; head-major slabs fill each block's
    v: torch.Tensor  # bytes as [count, block_size, D] instead

    @property
    def capacity(self) -> int:
        return self.k.shape[1]


def gather_heads(kv: KVCache, blocks: list[int], first: int, out: Buffer, head_major: bool = False) -> None:
    """K and V of `blocks` (in this order), heads [first, first + count) only, into out's first
    len(blocks) rows: [block_size, count, D] each, or [count, block_size, D] if `head_major`. Copied a
    run of consecutive blocks at a time: on this CPU 9.7 GB/s for one run against 2.7 for an indexed
    gather of the same blocks."""
    layers, _, block_size, count, dim = out.k.shape
    for pool, staged in ((kv.k_blocks, out.k), (kv.v_blocks, out.v)):
        heads = pool[:, :, :, first:first + count]
        for pos, start, n in block_runs(list(range(len(blocks))), blocks, len(blocks)):
            if head_major:
                staged[:, pos:pos + n].view(layers, n, count, block_size, dim)[:] = \
                    heads[:, start:start + n].transpose(2, 3)
            else:
                staged[:, pos:pos + n] = heads[:, start:start + n]


def token_major(kv: KVCache, blocks: list[int]) -> None:
    """Turn `blocks` of the pool, landed head-major ([Hkv, block_size, D] each, as slabs of several
    senders), into the pool's token-major [block_size, Hkv, D], in place."""
    layers, _, block_size, heads, dim = kv.k_blocks.shape
    for pool in (kv.k_blocks, kv.v_blocks):
        for start, _, n in block_runs(blocks, blocks, len(blocks)):
            landed = pool[:, start:start + n]
            landed.copy_(landed.view(layers, n, heads, block_size, dim).transpose(2, 3).clone())


class Staging:
    """A transport's staging buffers over its pool `kv`, registered with its NIXL `agent`."""

    def __init__(self, agent, kv: KVCache):
        self.agent, self.kv = agent, kv
        self.keep = not kv.k_blocks.is_cuda
        self.spare: list[Buffer] = []
        self.held: dict[str, list[Buffer]] = {}  # request id -> the buffers its writes read

    def stage(self, request_id: str, blocks: list[int], first: int, count: int,
              head_major: bool = False) -> Buffer | None:
        """Heads [first, first + count) of `blocks` in a buffer held for `request_id` (`gather_heads`);
        None where the GPU has no memory left for one."""
        buffer = self._take(len(blocks), count)
        if buffer is None:
            return None
        gather_heads(self.kv, blocks, first, buffer, head_major)
        if buffer.k.is_cuda:
            torch.cuda.current_stream().synchronize()  # gathered before NIXL reads it
        self.held.setdefault(request_id, []).append(buffer)
        return buffer

    def _take(self, num_blocks: int, count: int) -> Buffer | None:
        for i, buffer in enumerate(self.spare):
            if buffer.capacity >= num_blocks and buffer.k.shape[3] == count:
                return self.spare.pop(i)
        pool = self.kv.k_blocks
        shape = (pool.shape[0], num_blocks, pool.shape[2], count, pool.shape[4])
        try:
            k, v = pool.new_empty(shape), pool.new_empty(shape)
        except torch.cuda.OutOfMemoryError:
            return None
        return Buffer(self.agent.register_memory([k, v]), k, v)

    def release(self, request_id: str) -> None:
        """The request's writes have ended: its buffers are free."""
        for buffer in self.held.pop(request_id, []):
            if self.keep:
                self.spare.append(buffer)
            else:
                self.agent.deregister_memory(buffer.registration)
