"""The KV transport interface: how a context worker's KV blocks reach the blocks a generation
worker reserved for them.

Every transport is used the same way, so workers and the orchestrator never branch on which one
runs: each worker publishes a `PeerInfo` (its pool's layout plus an `address` only its transport
reads), peers `connect` to each other (layouts are checked once, here), the receiver `expect`s a
request's KV in its reserved blocks, the sender `send`s, and both poll for completions.

Tensor parallelism. Each rank of a worker has its own transport over its own pool (its share of
the KV heads). A worker of several ranks publishes a group `PeerInfo` whose address lists its
ranks' (`rank_infos`); a sender rank moves each head to the receiving rank that holds it
(`head_moves`), so context TP m and generation TP n pair for any m and n that split the heads,
and every note a receiving rank gets says how many it will get for that request.

Transports that can also pull (`supports_pull`) let the receiver `fetch` blocks a sender holds,
for servers that pick the generation worker only once the prefill is done (Dynamo): the sender
learns through `poll_read` that it may free them.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
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

    def to_wire(self) -> dict[str, Any]:
        """A JSON-safe form (bytes in the address as base64), for peers that meet through a server's
        request metadata rather than through our orchestrator."""
        address = {k: {"base64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v
                   for k, v in self.address.items()}
        return {"name": self.name, "layout": asdict(self.layout), "num_blocks": self.num_blocks, "address": address}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> PeerInfo:
        address = {k: base64.b64decode(v["base64"]) if isinstance(v, dict) and "base64" in v else v
                   for k, v in wire["address"].items()}
        return cls(wire["name"], KVCacheLayout(**wire["layout"]), int(wire["num_blocks"]), address)

    def check_compatible(self, other: PeerInfo) -> None:
        problems = self.layout.mismatches(other.layout)
        if problems:
            raise KVLayoutError(f"KV caches of {self.name} and {other.name} differ (" + "; ".join(problems)
                                + "); build both engines with `python build.py --phase both` and run them in one dtype.")


def rank_infos(peer: PeerInfo) -> list[PeerInfo]:
    """The ranks of a worker, in tensor-parallel order (a single-rank worker is its own)."""
    ranks = peer.address.get("ranks")
    return [peer] if ranks is None else [PeerInfo.from_wire(r) for r in ranks]


def group_info(name: str, ranks: list[PeerInfo]) -> PeerInfo:
    """A worker of several ranks, as its peers see it (layout: rank 0's, whose tp_size is the group's)."""
    return PeerInfo(name, ranks[0].layout, ranks[0].num_blocks, {"ranks": [r.to_wire() for r in ranks]})


@dataclass(frozen=True)
class HeadMove:
    """Heads [src_head, src_head + count) of sending rank `src_rank`'s pool go to heads
    [dst_head, dst_head + count) of receiving rank `dst_rank`'s (offsets within each pool)."""

    src_rank: int
    dst_rank: int
    src_head: int
    dst_head: int
    count: int
    arrivals: int  # how many moves land on dst_rank for one request (its notes to count)

    def whole_rows(self, src: KVCacheLayout, dst: KVCacheLayout) -> bool:
        """Whether the move is every head of both pools, so whole blocks move as they lie."""
        return self.count == src.local_kv_heads == dst.local_kv_heads


def head_moves(src: KVCacheLayout, dst: KVCacheLayout) -> list[HeadMove]:
    """Who sends which heads to whom, from a group split `src.tp_size` ways to one split
    `dst.tp_size` ways: each receiving rank takes each head it holds from the lowest sending rank
    holding it (heads replicated over several ranks are sent once)."""
    owner = {}
    for rank in reversed(range(src.tp_size)):
        for head in range(*src.kv_heads(rank)):
            owner[head] = rank
    moves = []
    for d in range(dst.tp_size):
        first, last = dst.kv_heads(d)
        runs: list[list[int]] = []  # [src_rank, first head, count]
        for head in range(first, last):
            if runs and runs[-1][0] == owner[head]:
                runs[-1][2] += 1
            else:
                runs.append([owner[head], head, 1])
        moves += [HeadMove(s, d, h - src.kv_heads(s)[0], h - first, n, len(runs)) for s, h, n in runs]
    return moves


def outgoing_moves(ours: PeerInfo, peer: PeerInfo) -> tuple[list[PeerInfo], list[HeadMove]]:
    """`peer`'s ranks, and the moves of heads this rank (`ours`) sends them."""
    ranks = rank_infos(peer)
    return ranks, [mv for mv in head_moves(ours.layout, ranks[0].layout) if mv.src_rank == ours.layout.tp_rank]


def moved_bytes(kv: KVCache, num_blocks: int, moves: list[HeadMove]) -> int:
    """Bytes `moves` carry out of `num_blocks` blocks of this rank's pool."""
    return kv_bytes(kv, num_blocks) * sum(mv.count for mv in moves) // kv.layout.local_kv_heads


class Arrivals:
    """A receiving rank's count of the transfers landed per request, each of which says how many
    there will be (`HeadMove.arrivals`)."""

    def __init__(self):
        self.landed: dict[str, int] = {}

    def land(self, request_id: str, expected: int) -> bool:
        """Count one; True once it was the last."""
        self.landed[request_id] = self.landed.get(request_id, 0) + 1
        if self.landed[request_id] < expected:
            return False
        del self.landed[request_id]
        return True

    def forget(self, request_id: str) -> None:
        self.landed.pop(request_id, None)


class KVTransport(Protocol):
    """Built as `cls(name, kv_cache, **options)`, `options` one entry of `cls.plan(...)`."""

    info: PeerInfo
    replaceable: bool  # a dead worker can be replaced alone (False: its group was fixed at start)
    supports_pull: bool  # implements fetch / poll_fetched / poll_read

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

    def forget(self, request_id: str) -> None:
        """Receiver: stop waiting for this request's KV (no sender will write it: its blocks are freed)."""

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        """Start writing our `src_blocks` into `peer`'s `dst_blocks`; returns the bytes that will move."""

    def poll_sent(self) -> list[tuple[str, bool]]:
        """(request id, succeeded) for sends that ended since the last call."""

    def poll_received(self) -> list[str]:
        """Request ids whose KV has fully landed since the last call."""

    # ---- pull (only where supports_pull) ----
    def fetch(self, request_id: str, peer: str, src_blocks: list[int], dst_blocks: list[int]) -> int:
        """Receiver: start reading `peer`'s `src_blocks` into our `dst_blocks`; returns the bytes."""

    def poll_fetched(self) -> list[tuple[str, bool]]:
        """Receiver: (request id, succeeded) for reads that ended since the last call."""

    def release(self, request_id: str, peer: PeerInfo) -> None:
        """Receiver: tell `peer` we will not read the KV it holds for this request."""

    def poll_read(self) -> list[str]:
        """Sender: request ids whose KV a peer finished reading (or released) since the last call."""


def pool_info(name: str, kv: KVCache, **address: Any) -> PeerInfo:
    return PeerInfo(name, kv.layout, kv.num_blocks, address)


def kv_bytes(kv: KVCache, num_blocks: int) -> int:
    """Bytes of `num_blocks` blocks of K and V over every layer."""
    return num_blocks * kv.layout.block_size * kv.layout.bytes_per_token()


def block_runs(src: list[int], dst: list[int], max_blocks: int) -> list[tuple[int, int, int]]:
    """Coalesce parallel block lists into (src_start, dst_start, length) runs of consecutive blocks,
    each at most `max_blocks` long.

    The pairs are copies in no particular order, so they are sorted by source block first: a block
    manager hands recycled blocks out in descending order (a sequence's blocks are freed tail first),
    and pairs taken in list order would then give one 64 KiB descriptor per block.
    """
    runs: list[list[int]] = []
    for s, d in sorted(zip(src, dst)):
        if runs and runs[-1][2] < max_blocks and runs[-1][0] + runs[-1][2] == s and runs[-1][1] + runs[-1][2] == d:
            runs[-1][2] += 1
        else:
            runs.append([s, d, 1])
    return [tuple(r) for r in runs]
