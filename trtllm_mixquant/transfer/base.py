"""The KV transport interface: how a context worker's KV blocks reach the blocks a generation
worker reserved for them.

Every transport is used the same way, so workers and the orchestrator never branch on which one
runs: each worker publishes a `PeerInfo` (its pool's layout plus an `address` only its transport
reads), peers `connect` to each other (layouts are checked once, here), the receiver `expect`s a
request's KV in its reserved blocks, the sender `send`s, and both poll for completions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from trtllm_mixquant.manifest import KVCacheLayout

if TYPE_CHECKING:
    from trtllm_mixquant.runtime.kv_cache import KVCache


class KVLayoutError(ValueError):
    """Two workers' KV caches have different layouts; no KV can move between them."""


@dataclass(frozen=True)
class PeerInfo:
    """What a peer needs to reach a worker's KV pool ([layers, num_blocks, block_size, Hkv, D] for K and V)."""

    name: str
    layout: KVCacheLayout  # of the running pool: its dtype is the one the worker runs in
    num_blocks: int
    address: dict[str, Any] = field(default_factory=dict)  # the transport's own (agent metadata, addresses, rank)

    def check_compatible(self, other: PeerInfo) -> None:
        problems = self.layout.mismatches(other.layout)
        if problems:
            raise KVLayoutError(f"KV caches of {self.name} and {other.name} differ (" + "; ".join(problems)
                                + "); build both engines with `python build.py --phase both` and run them in one dtype.")


class KVTransport(Protocol):
    """Built as `cls(name, kv_cache, **options)`, `options` one entry of `cls.plan(...)`."""

    info: PeerInfo
    replaceable: bool  # a dead worker can be replaced alone (False: its group was fixed at start)

    @classmethod
    def available(cls) -> bool:
        """Whether this transport can run here (its library is installed)."""

    @classmethod
    def plan(cls, num_workers: int, host: str) -> list[dict[str, Any]]:
        """Per-worker options for a group of workers that will exchange KV (ranks, a meeting point)."""

    def connect(self, peer: PeerInfo) -> None:
        """Accept `peer` as a partner; raises KVLayoutError if its layout differs from ours."""

    def expect(self, request_id: str, dst_blocks: list[int]) -> None:
        """Receiver: this request's KV will land in `dst_blocks`."""

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        """Start writing our `src_blocks` into `peer`'s `dst_blocks`; returns the bytes that will move."""

    def poll_sent(self) -> list[tuple[str, bool]]:
        """(request id, succeeded) for sends that ended since the last call."""

    def poll_received(self) -> list[str]:
        """Request ids whose KV has fully landed since the last call."""


def pool_info(name: str, kv: KVCache, **address: Any) -> PeerInfo:
    return PeerInfo(name, kv.layout, kv.num_blocks, address)


def kv_bytes(kv: KVCache, num_blocks: int) -> int:
    """Bytes of `num_blocks` blocks of K and V over every layer."""
    return num_blocks * kv.layout.block_size * kv.layout.bytes_per_token()
