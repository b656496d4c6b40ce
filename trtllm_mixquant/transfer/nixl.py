"""KV-cache transfer through NIXL: one-sided UCX transfers between two workers' KV pools.

Each worker registers its whole KV pool with a NIXL agent once. Push (the one-host orchestrator): a
context worker writes a request's blocks straight into the blocks the generation worker reserved for
them (no staging copy) and NIXL notifies the receiver with the request id when the data has landed.
Pull (Dynamo, where the generation worker is picked after the prefill): the generation worker reads
the blocks the context worker holds into its reserved ones and NIXL notifies the context worker,
which then frees them. Runs of consecutive blocks are coalesced into single descriptors. UCX moves
DRAM on CPU and VRAM on GPU, over shared memory on one host and the network across hosts.

Between workers of different tensor-parallel sizes each sending rank writes its heads into the
receiving ranks that hold them (`base.head_moves`), first gathered into a staging buffer
(`staging`). Where a receiving rank takes all its heads from one sending rank that holds more
(context TP smaller than generation TP), the buffer is laid out as the receiver's blocks and moves
as whole rows. Where several senders fill each receiving row (context TP larger), each writes its
heads of a block as one head-major slab (`SLABS`) and the receiver turns the landed blocks
token-major. With no GPU memory left to stage, the first kind moves one descriptor per token, head
range and layer, and the second fails its request (the receiver must not turn a block that holds
token-major heads). `bench transfer` on our 2-core CPU host, 8K tokens of Qwen3-8B's KV (1.1 GiB):
TP 1 -> 1 222 ms; 1 -> 2 367 ms staged (1.4-1.5 s a token at a time); 2 -> 1 815 ms as slabs
(1.58 s a token at a time). Pulling needs one rank on both sides.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from dataclasses import replace

import numpy as np

from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.transfer.base import (
    Arrivals,
    HeadMove,
    KVLayoutError,
    PeerInfo,
    block_runs,
    kv_bytes,
    moved_bytes,
    outgoing_moves,
    pool_info,
    rank_infos,
)
from trtllm_mixquant.transfer.staging import Staging, token_major

log = logging.getLogger(__name__)

# Longest descriptor. 16 MiB descriptors moved 1.2 GB at 212 GB/s on two H100s; a 4.6 GB transfer
# measured 9-11 GB/s only because it was cut into 64 KiB descriptors (see `base.block_runs`).
MAX_DESCRIPTOR_BYTES = 16 << 20
READ_NOTE = b"read:"  # prefixes the notification a reader sends the pool it read from
# Marks a write note whose heads arrive as slabs: each sender of a receiving rank whose rows several
# senders fill writes its heads of a block as one [count, block_size, D] slab at their place in a
# head-major [Hkv, block_size, D] block, and the receiver turns its blocks token-major once all landed.
SLABS = b"h"


def descriptors(info: PeerInfo, runs: list[tuple[int, int]], heads: tuple[int, int] | None = None,
                slabs: bool = False) -> np.ndarray:
    """(address, bytes, device) rows for (start_block, length) runs of blocks: one row per run and
    layer of K and V, or with `heads` = (first, count) only those heads, one row per token and layer,
    or with `slabs` those heads' bytes of each block as if it were head-major (`SLABS`), one row per
    block and layer."""
    a, layout = info.address, info.layout
    u64 = np.uint64
    if heads is None:  # pool rows are blocks
        starts = np.array([s for s, _ in runs], dtype=u64)
        sizes = np.array([n * a["block_bytes"] for _, n in runs], dtype=u64)
        unit, rows_per_layer, offset = a["block_bytes"], info.num_blocks, 0
    elif slabs:  # pool rows are blocks; heads [first, first + count) of one, head-major
        head_block = a["block_bytes"] // layout.local_kv_heads  # one head's tokens of a block
        starts = np.concatenate([np.arange(s, s + n, dtype=u64) for s, n in runs])
        sizes = np.full(starts.shape, heads[1] * head_block, dtype=u64)
        unit, rows_per_layer, offset = a["block_bytes"], info.num_blocks, heads[0] * head_block
    else:  # pool rows are tokens; `count` heads from head `first` of each
        unit = a["block_bytes"] // layout.block_size
        head_bytes = unit // layout.local_kv_heads
        blocks = np.concatenate([np.arange(s, s + n, dtype=u64) for s, n in runs])
        starts = (blocks[:, None] * u64(layout.block_size) + np.arange(layout.block_size, dtype=u64)).ravel()
        sizes = np.full(starts.shape, heads[1] * head_bytes, dtype=u64)
        rows_per_layer, offset = info.num_blocks * layout.block_size, heads[0] * head_bytes
    layers = np.arange(layout.num_layers, dtype=u64)[:, None]
    rows = []
    for base in (a["k_base"], a["v_base"]):
        addr = u64(base) + (layers * u64(rows_per_layer) + starts[None, :]) * u64(unit) + u64(offset)
        size = np.broadcast_to(sizes[None, :], addr.shape)
        dev = np.full(addr.shape, a["device_id"], dtype=u64)
        rows.append(np.stack([addr.ravel(), size.ravel(), dev.ravel()], axis=1))
    return np.concatenate(rows)


class NixlKVTransport:
    """One worker's NIXL agent over its KV pool."""

    replaceable = True  # a replacement worker is a new agent its peers connect to
    supports_pull = True

    def __init__(self, name: str, kv: KVCache):
        from nixl._api import nixl_agent, nixl_agent_config

        self.kv = kv
        device = kv.k_blocks.device
        # NIXL's progress thread spins a whole core even when idle; for host memory the transfers
        # progress well enough when the worker polls them (`poll_sent`, `poll_received`), so it is
        # only kept for GPU pools, where the measured bandwidths were taken with it.
        config = nixl_agent_config(enable_prog_thread=device.type == "cuda", backends=["UCX"])
        self.agent = nixl_agent(name, config)
        self.registered = self.agent.register_memory([kv.k_blocks, kv.v_blocks])
        self.staging = Staging(self.agent, kv)  # for heads going to ranks that hold fewer than we do
        self.info = pool_info(name, kv, agent_metadata=self.agent.get_agent_metadata(),
                              k_base=kv.k_blocks.data_ptr(), v_base=kv.v_blocks.data_ptr(),
                              block_bytes=kv.k_blocks[0, 0].numel() * kv.k_blocks.element_size(),
                              mem_type="VRAM" if device.type == "cuda" else "DRAM", device_id=device.index or 0)
        self.peers: dict[str, PeerInfo] = {}  # connected: layouts checked
        self.known: set[str] = set()  # agents whose metadata we loaded
        self.sending: dict[str, list] = {}  # request id -> NIXL transfer handles (writes, one per receiving rank)
        self.fetching: dict[str, list] = {}  # request id -> NIXL transfer handles (reads)
        self.notes: dict[bool, list[str]] = {False: [], True: []}  # read note? -> request ids
        self.arrivals = Arrivals()  # write notes so far, until all of a request's senders' came
        self.expected: dict[str, list[int]] = {}  # request id -> the blocks its KV lands in
        self.slabbed: set[str] = set()  # requests whose heads land as slabs (`SLABS`)

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("nixl") is not None

    @classmethod
    def plan(cls, num_workers: int, host: str) -> list[dict]:
        return [{} for _ in range(num_workers)]  # agents exchange their metadata through `PeerInfo`

    def connect(self, peer: PeerInfo) -> None:
        for rank in rank_infos(peer):
            self.info.check_compatible(rank)
            self._know(rank)
        self.peers[peer.name] = peer

    def _know(self, peer: PeerInfo) -> None:
        if peer.name not in self.known:
            self.agent.add_remote_agent(peer.address["agent_metadata"])
            self.known.add(peer.name)

    def expect(self, request_id: str, dst_blocks: list[int]) -> None:
        """The senders write straight into the blocks and notify us; kept for turning slabs token-major."""
        self.expected[request_id] = dst_blocks

    def forget(self, request_id: str) -> None:
        self.arrivals.forget(request_id)
        self.expected.pop(request_id, None)
        self.slabbed.discard(request_id)

    def _transfer(self, op: str, request_id: str, local: PeerInfo, near: np.ndarray, remote: PeerInfo,
                  far: np.ndarray, note: bytes):
        """One NIXL transfer between descriptor rows `near` of `local` (our pool, or a staging buffer)
        and `far` of `remote` (one rank)."""
        try:
            handle = self.agent.initialize_xfer(op, self.agent.get_xfer_descs(near, local.address["mem_type"]),
                                                self.agent.get_xfer_descs(far, remote.address["mem_type"]),
                                                remote.name, note)
            started = self.agent.transfer(handle) != "ERR"
        except Exception as err:  # e.g. nixlRemoteDisconnectError: the peer is gone
            raise RuntimeError(f"NIXL could not start the KV transfer of {request_id} with {remote.name}: {err}") from err
        if not started:
            raise RuntimeError(f"NIXL could not start the KV transfer of {request_id} with {remote.name}")
        return handle

    def _blocks(self, op: str, request_id: str, local: PeerInfo, local_blocks: list[int], remote: PeerInfo,
                far_blocks: list[int], note: bytes, heads: tuple[tuple[int, int], tuple[int, int]] | None = None):
        """Whole blocks of `local` to or from `remote`'s, coalesced into runs; with `heads` ((ours,
        count), (theirs, count)) only those heads, a descriptor per token."""
        runs = block_runs(local_blocks, far_blocks, max(MAX_DESCRIPTOR_BYTES // local.address["block_bytes"], 1))
        ours, theirs = heads or (None, None)
        return self._transfer(op, request_id, local, descriptors(local, [(s, n) for s, _, n in runs], ours), remote,
                              descriptors(remote, [(d, n) for _, d, n in runs], theirs), note)

    def _staged(self, request_id: str, src_blocks: list[int], move: HeadMove, head_major: bool) -> PeerInfo | None:
        """`move`'s heads of `src_blocks` gathered into a staging buffer, as a pool whose first
        len(src_blocks) blocks they are; None if there is no memory for it."""
        buffer = self.staging.stage(request_id, src_blocks, move.src_head, move.count, head_major)
        if buffer is None:
            return None
        address = {**self.info.address, "k_base": buffer.k.data_ptr(), "v_base": buffer.v.data_ptr(),
                   "block_bytes": buffer.k[0, 0].numel() * buffer.k.element_size()}
        return replace(self.info, name=f"{self.info.name}-staging", num_blocks=buffer.capacity, address=address)

    def _write(self, request_id: str, src_blocks: list[int], remote: PeerInfo, dst_blocks: list[int],
               move: HeadMove):
        """Start writing `move`'s heads of `src_blocks` into `remote`'s `dst_blocks`: whole blocks where
        both pools hold exactly those heads; else gathered into staging first, then whole blocks where
        the receiver holds just these heads (a token's heads at a time if there is no memory to stage),
        slabs (`SLABS`) where other senders fill the rest of its rows."""
        note = f"{move.arrivals}:{request_id}".encode()
        if move.whole_rows(self.info.layout, remote.layout):
            return self._blocks("WRITE", request_id, self.info, src_blocks, remote, dst_blocks, note)
        whole = move.count == remote.layout.local_kv_heads
        pairs = sorted(zip(dst_blocks, src_blocks))  # staged in the receiver's block order: long runs
        staging = self._staged(request_id, [s for _, s in pairs], move, head_major=not whole)
        if staging is None and not whole:  # the receiver turns whole blocks once the others' slabs land
            raise RuntimeError(f"no GPU memory to stage the KV of {request_id} for {remote.name}: retry, or leave "
                               "the context worker more free memory (fewer --kv-cache-blocks)")
        if staging is None:
            log.warning("no GPU memory to stage the KV of %s: its heads move a token at a time (slower)", request_id)
            return self._blocks("WRITE", request_id, self.info, src_blocks, remote, dst_blocks, note,
                                ((move.src_head, move.count), (move.dst_head, move.count)))
        dst_sorted = [d for d, _ in pairs]
        if whole:
            return self._blocks("WRITE", request_id, staging, list(range(len(pairs))), remote, dst_sorted,
                                note)
        near = descriptors(staging, [(i, 1) for i in range(len(pairs))])
        far = descriptors(remote, [(d, 1) for d in dst_sorted], (move.dst_head, move.count), slabs=True)
        return self._transfer("WRITE", request_id, staging, near, remote, far, SLABS + note)

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        """Write our heads of `src_blocks` into the ranks of `peer` that hold them (none: done at once)."""
        ranks, moves = outgoing_moves(self.info, self.peers[peer])
        handles = []
        try:
            for mv in moves:
                handles.append(self._write(request_id, src_blocks, ranks[mv.dst_rank], dst_blocks, mv))
        except Exception:  # nothing of this request stays in flight or registered
            self._release(handles)
            self.staging.release(request_id)
            raise
        self.sending[request_id] = handles
        return moved_bytes(self.kv, len(src_blocks), moves)

    def fetch(self, request_id: str, peer: str, src_blocks: list[int], dst_blocks: list[int]) -> int:
        """Read `peer`'s `src_blocks` into our `dst_blocks`; the peer learns it through `poll_read`."""
        remote = self.peers[peer]
        if self.info.layout.tp_size > 1 or remote.layout.tp_size > 1:
            raise KVLayoutError(f"pulling KV between tensor-parallel workers is not supported ({self.info.name}: "
                                f"TP {self.info.layout.tp_size}, {peer}: TP {remote.layout.tp_size}); run them "
                                "under the orchestrator (`trtllm-mixquant serve`), which pushes KV")
        self.fetching[request_id] = [self._blocks("READ", request_id, self.info, dst_blocks, remote, src_blocks,
                                                  READ_NOTE + request_id.encode())]
        return kv_bytes(self.kv, len(dst_blocks))

    def release(self, request_id: str, peer: PeerInfo) -> None:
        """Tell `peer` we will not read the KV it holds for this request (as a finished read would);
        works whatever its layout."""
        self._know(peer)
        self.agent.send_notif(peer.name, READ_NOTE + request_id.encode())

    def _state(self, handle) -> str:
        try:
            return self.agent.check_xfer_state(handle)
        except Exception:  # the peer died: NIXL raises (nixlRemoteDisconnectError) instead of "ERR"
            return "ERR"

    def _poll(self, transfers: dict[str, list]) -> list[tuple[str, bool]]:
        """(request id, succeeded) for requests whose transfers have all ended (or one failed)."""
        done = []
        for request_id, handles in list(transfers.items()):
            states = [self._state(h) for h in handles]
            if "ERR" in states or all(state == "DONE" for state in states):
                self._release(handles)
                del transfers[request_id]
                done.append((request_id, "ERR" not in states))
        return done

    def _release(self, handles: list) -> None:
        for handle in handles:
            with contextlib.suppress(Exception):
                self.agent.release_xfer_handle(handle)

    def poll_sent(self) -> list[tuple[str, bool]]:
        done = self._poll(self.sending)
        for request_id, _ in done:
            self.staging.release(request_id)
        return done

    def poll_fetched(self) -> list[tuple[str, bool]]:
        """(request id, succeeded) for reads that ended since the last call."""
        return self._poll(self.fetching)

    def _take_notes(self, read: bool) -> list[str]:
        """Request ids whose reads (read) or writes have all landed: a write note is
        "{arrivals}:{request id}", one per sending rank."""
        for msgs in self.agent.get_new_notifs().values():
            for msg in msgs:
                if msg.startswith(READ_NOTE):
                    self.notes[True].append(msg[len(READ_NOTE):].decode())
                    continue
                slabs = msg.startswith(SLABS)
                arrivals, _, request_id = msg[len(SLABS) if slabs else 0:].decode().partition(":")
                if slabs:
                    self.slabbed.add(request_id)
                if self.arrivals.land(request_id, int(arrivals)):
                    self._landed(request_id)
        taken, self.notes[read] = self.notes[read], []
        return taken

    def _landed(self, request_id: str) -> None:
        blocks = self.expected.pop(request_id, None)
        if request_id in self.slabbed:
            self.slabbed.discard(request_id)
            if blocks is None:
                raise RuntimeError(f"the KV of {request_id} landed as slabs, but no blocks were expected for it")
            token_major(self.kv, blocks)
        self.notes[False].append(request_id)

    def poll_received(self) -> list[str]:
        return self._take_notes(read=False)

    def poll_read(self) -> list[str]:
        """Request ids whose KV a peer has finished reading from us since the last call."""
        return self._take_notes(read=True)
