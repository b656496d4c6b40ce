"""A tensor-parallel worker's KV transport: one transport per rank (each over its own pool and heads),
driven from rank 0.

Rank 0's calls are broadcast to the other ranks (`engine.ranks.follow` runs them there, in the
order rank 0 issued them) and run on every rank's own transport; a request's send or receive has
ended when it has ended on every rank (their polls are gathered on rank 0). Peers see one group
`PeerInfo` listing the ranks (`base.group_info`), and each rank moves its heads to the peer ranks
that hold them. Pulling (Dynamo) is not offered: it needs one rank on both sides.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from trtllm_mixquant.engine.ranks import KV
from trtllm_mixquant.runtime.parallel import TPGroup
from trtllm_mixquant.transfer.base import KVLayoutError, PeerInfo, group_info

log = logging.getLogger(__name__)


def open_transport(cls, name: str, kv, options: dict[str, Any], tp: TPGroup):
    """`cls`'s transport for this rank of worker `name`: itself on one rank, in a group on several."""
    if tp.size == 1:
        return cls(name, kv, **options)
    return GroupKVTransport(cls(f"{name}.r{tp.rank}", kv, **options), tp, name)


class GroupKVTransport:
    supports_pull = False

    def __init__(self, local, tp: TPGroup, name: str):
        self.local, self.tp = local, tp
        self.replaceable = local.replaceable
        ranks = tp.gather_objects(local.info)
        self.info = group_info(name, ranks) if tp.rank == 0 else local.info
        # rank 0: what has not ended on every rank yet, and on how many it has
        self.sending: dict[str, bool] = {}  # request -> some rank's send failed
        self.expected: set[str] = set()  # receives
        self.ranks_done: dict[str, Counter] = {"poll_sent": Counter(), "poll_received": Counter()}
        self.broken: list[str] = []  # this rank: sends that could not start here

    # ---- rank 0 --------------------------------------------------------------------------
    def _everywhere(self, op: str, *args):
        self.tp.broadcast((KV, op, args))
        return self.follow(op, *args)

    def connect(self, peer: PeerInfo) -> None:
        self._everywhere("connect", peer)

    def expect(self, request_id: str, dst_blocks: list[int]) -> None:
        self.expected.add(request_id)
        self._everywhere("expect", request_id, dst_blocks)

    def forget(self, request_id: str) -> None:
        if request_id in self.expected:
            self.expected.discard(request_id)
            self.ranks_done["poll_received"].pop(request_id, None)
            self._everywhere("forget", request_id)

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        self.sending[request_id] = False
        try:
            return self._everywhere("send", request_id, src_blocks, peer, dst_blocks)
        except Exception:  # it failed here: the worker fails the request, and no report of it is awaited
            del self.sending[request_id]
            raise

    def poll_sent(self) -> list[tuple[str, bool]]:
        if not self.sending:
            return []
        return [(rid, not self.sending.pop(rid)) for rid in self._gather("poll_sent", self.sending)]

    def poll_received(self) -> list[str]:
        if not self.expected:
            return []
        landed = self._gather("poll_received", self.expected)
        self.expected.difference_update(landed)
        return landed

    def _gather(self, op: str, pending) -> list[str]:
        """Requests of `pending` whose transfer `op` has now reported ended on every rank (rank 0)."""
        counts = self.ranks_done[op]
        for rank_report in self._everywhere(op):
            for rid, ok in rank_report:
                if rid not in pending:  # given up on meanwhile
                    continue
                counts[rid] += 1
                if not ok:
                    self.sending[rid] = True
        done = [rid for rid, n in counts.items() if n == self.tp.size]
        for rid in done:
            del counts[rid]
        return done

    def fetch(self, request_id: str, peer: str, src_blocks: list[int], dst_blocks: list[int]) -> int:
        raise KVLayoutError("a tensor-parallel worker cannot pull KV; run it under the orchestrator, which pushes")

    def release(self, request_id: str, peer: PeerInfo) -> None:
        raise KVLayoutError("a tensor-parallel worker holds no KV for pulling")

    # ---- every rank -------------------------------------------------------------------------
    def follow(self, op: str, *args):
        """Run rank 0's call `op` on this rank's transport; gathered calls return every rank's
        answer on rank 0. A call that fails here fails only its request."""
        if op == "send":
            try:
                nbytes = self.local.send(*args)
            except Exception as err:
                if self.tp.rank == 0:
                    self.tp.gather_objects(0)
                    raise
                log.error("rank %d could not start the KV transfer of %s: %s", self.tp.rank, args[0], err)
                self.broken.append(args[0])
                nbytes = 0
            sizes = self.tp.gather_objects(nbytes)
            return sum(sizes) if sizes else None
        if op == "poll_sent":
            ended = self.local.poll_sent() + [(rid, False) for rid in self.broken]
            self.broken = []
            return self.tp.gather_objects(ended)
        if op == "poll_received":
            return self.tp.gather_objects([(rid, True) for rid in self.local.poll_received()])
        try:
            return getattr(self.local, op)(*args)
        except Exception as err:  # rank 0 raises it to the worker; the others log it
            if self.tp.rank == 0:
                raise
            log.error("rank %d: KV transport %s failed: %s", self.tp.rank, op, err)
