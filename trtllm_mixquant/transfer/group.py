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
        self.reports: dict[str, Counter] = {"sent": Counter(), "received": Counter()}  # rank 0: request -> ranks done
        self.failed_sends: dict[str, bool] = {}  # rank 0: request -> some rank's send failed
        self.expected: set[str] = set()  # rank 0: receives not yet ended on every rank
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
            self.reports["received"].pop(request_id, None)
            self._everywhere("forget", request_id)

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        self.failed_sends[request_id] = False
        return self._everywhere("send", request_id, src_blocks, peer, dst_blocks)

    def poll_sent(self) -> list[tuple[str, bool]]:
        if not self.failed_sends:
            return []
        ended = []
        for rid in self._gather("poll_sent"):
            ended.append((rid, not self.failed_sends.pop(rid)))
        return ended

    def poll_received(self) -> list[str]:
        if not self.expected:
            return []
        landed = self._gather("poll_received")
        self.expected.difference_update(landed)
        return landed

    def _gather(self, op: str) -> list[str]:
        """Request ids `op` reported on every rank by now (rank 0)."""
        reports = self.reports["sent" if op == "poll_sent" else "received"]
        for rank_report in self._everywhere(op):
            for item in rank_report:
                rid, ok = item if isinstance(item, tuple) else (item, True)
                reports[rid] += 1
                if not ok and rid in self.failed_sends:
                    self.failed_sends[rid] = True
        done = [rid for rid, n in reports.items() if n == self.tp.size]
        for rid in done:
            del reports[rid]
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
            return self.tp.gather_objects(self.local.poll_received())
        try:
            return getattr(self.local, op)(*args)
        except Exception as err:  # rank 0 raises it to the worker; the others log it
            if self.tp.rank == 0:
                raise
            log.error("rank %d: KV transport %s failed: %s", self.tp.rank, op, err)
