"""KV-cache transfer through NIXL: one-sided UCX transfers between two workers' KV pools.

Each worker registers its whole KV pool with a NIXL agent once. Push (the one-host orchestrator): a
context worker writes a request's blocks straight into the blocks the generation worker reserved for
them (no staging copy) and NIXL notifies the receiver with the request id when the data has landed.
Pull (Dynamo, where the generation worker is picked after the prefill): the generation worker reads
the blocks the context worker holds into its reserved ones and NIXL notifies the context worker,
which then frees them. Runs of consecutive blocks are coalesced into single descriptors. UCX moves
DRAM on CPU and VRAM on GPU, over shared memory on one host and the network across hosts.
"""

from __future__ import annotations

import contextlib
import importlib.util

import numpy as np

from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.transfer.base import PeerInfo, kv_bytes, pool_info


# Longest descriptor. 16 MiB descriptors moved 1.2 GB at 212 GB/s on two H100s; a 4.6 GB transfer
# measured 9-11 GB/s only because it was cut into 64 KiB descriptors (see `block_runs`).
MAX_DESCRIPTOR_BYTES = 16 << 20
READ_NOTE = b"read:"  # prefixes the notification a reader sends the pool it read from


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


def descriptors(info: PeerInfo, runs: list[tuple[int, int]]) -> np.ndarray:
    """[2 * layers * len(runs), 3] (address, bytes, device) rows for (start_block, length) runs."""
    a = info.address
    layers = np.arange(info.layout.num_layers, dtype=np.uint64)[:, None]
    starts = np.array([s for s, _ in runs], dtype=np.uint64)[None, :]
    lengths = np.array([n for _, n in runs], dtype=np.uint64)[None, :]
    rows = []
    for base in (a["k_base"], a["v_base"]):
        addr = np.uint64(base) + (layers * np.uint64(info.num_blocks) + starts) * np.uint64(a["block_bytes"])
        size = np.broadcast_to(lengths * np.uint64(a["block_bytes"]), addr.shape)
        dev = np.full(addr.shape, a["device_id"], dtype=np.uint64)
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
        self.info = pool_info(name, kv, agent_metadata=self.agent.get_agent_metadata(),
                              k_base=kv.k_blocks.data_ptr(), v_base=kv.v_blocks.data_ptr(),
                              block_bytes=kv.k_blocks[0, 0].numel() * kv.k_blocks.element_size(),
                              mem_type="VRAM" if device.type == "cuda" else "DRAM", device_id=device.index or 0)
        self.peers: dict[str, PeerInfo] = {}  # connected: layouts checked
        self.known: set[str] = set()  # agents whose metadata we loaded
        self.sending: dict[str, object] = {}  # request id -> NIXL transfer handle (writes)
        self.fetching: dict[str, object] = {}  # request id -> NIXL transfer handle (reads)
        self.notes: dict[bool, list[str]] = {False: [], True: []}  # read note? -> request ids

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("nixl") is not None

    @classmethod
    def plan(cls, num_workers: int, host: str) -> list[dict]:
        return [{} for _ in range(num_workers)]  # agents exchange their metadata through `PeerInfo`

    def connect(self, peer: PeerInfo) -> None:
        self.info.check_compatible(peer)
        self._know(peer)
        self.peers[peer.name] = peer

    def _know(self, peer: PeerInfo) -> None:
        if peer.name not in self.known:
            self.agent.add_remote_agent(peer.address["agent_metadata"])
            self.known.add(peer.name)

    def expect(self, request_id: str, dst_blocks: list[int]) -> None:
        """Nothing to prepare: the sender writes straight into the blocks and notifies us."""

    def _transfer(self, op: str, request_id: str, local_blocks: list[int], peer: str, far_blocks: list[int],
                  note: bytes):
        remote = self.peers[peer]
        block_bytes = self.info.address["block_bytes"]
        runs = block_runs(local_blocks, far_blocks, max(MAX_DESCRIPTOR_BYTES // block_bytes, 1))
        local = self.agent.get_xfer_descs(descriptors(self.info, [(s, n) for s, _, n in runs]),
                                          self.info.address["mem_type"])
        far = self.agent.get_xfer_descs(descriptors(remote, [(d, n) for _, d, n in runs]), remote.address["mem_type"])
        try:
            handle = self.agent.initialize_xfer(op, local, far, peer, note)
            started = self.agent.transfer(handle) != "ERR"
        except Exception as err:  # e.g. nixlRemoteDisconnectError: the peer is gone
            raise RuntimeError(f"NIXL could not start the KV transfer of {request_id} with {peer}: {err}") from err
        if not started:
            raise RuntimeError(f"NIXL could not start the KV transfer of {request_id} with {peer}")
        return handle

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        self.sending[request_id] = self._transfer("WRITE", request_id, src_blocks, peer, dst_blocks,
                                                  request_id.encode())
        return kv_bytes(self.kv, len(src_blocks))

    def fetch(self, request_id: str, peer: str, src_blocks: list[int], dst_blocks: list[int]) -> int:
        """Read `peer`'s `src_blocks` into our `dst_blocks`; the peer learns it through `poll_read`."""
        self.fetching[request_id] = self._transfer("READ", request_id, dst_blocks, peer, src_blocks,
                                                   READ_NOTE + request_id.encode())
        return kv_bytes(self.kv, len(dst_blocks))

    def release(self, request_id: str, peer: PeerInfo) -> None:
        """Tell `peer` we will not read the KV it holds for this request (as a finished read would);
        works whatever its layout."""
        self._know(peer)
        self.agent.send_notif(peer.name, READ_NOTE + request_id.encode())

    def _poll(self, handles: dict[str, object]) -> list[tuple[str, bool]]:
        done = []
        for request_id, handle in list(handles.items()):
            try:
                state = self.agent.check_xfer_state(handle)
            except Exception:  # the peer died: NIXL raises (nixlRemoteDisconnectError) instead of "ERR"
                state = "ERR"
            if state in ("DONE", "ERR"):
                with contextlib.suppress(Exception):
                    self.agent.release_xfer_handle(handle)
                del handles[request_id]
                done.append((request_id, state == "DONE"))
        return done

    def poll_sent(self) -> list[tuple[str, bool]]:
        return self._poll(self.sending)

    def poll_fetched(self) -> list[tuple[str, bool]]:
        """(request id, succeeded) for reads that ended since the last call."""
        return self._poll(self.fetching)

    def _take_notes(self, read: bool) -> list[str]:
        for msgs in self.agent.get_new_notifs().values():
            for msg in msgs:
                is_read = msg.startswith(READ_NOTE)
                self.notes[is_read].append(msg[len(READ_NOTE):].decode() if is_read else msg.decode())
        taken, self.notes[read] = self.notes[read], []
        return taken

    def poll_received(self) -> list[str]:
        return self._take_notes(read=False)

    def poll_read(self) -> list[str]:
        """Request ids whose KV a peer has finished reading from us since the last call."""
        return self._take_notes(read=True)
