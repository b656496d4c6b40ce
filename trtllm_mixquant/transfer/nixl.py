"""KV-cache transfer through NIXL: one-sided UCX writes into the generation worker's blocks.

Each worker registers its whole KV pool with a NIXL agent once. A context worker writes a request's
blocks straight into the blocks the generation worker reserved for it (no staging copy), coalescing
runs of consecutive blocks into single descriptors, and NIXL notifies the receiver with the request
id when the data has landed. UCX moves DRAM on CPU and VRAM on GPU.
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
        self.peers: dict[str, PeerInfo] = {}
        self.sending: dict[str, object] = {}  # request id -> NIXL transfer handle

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("nixl") is not None

    @classmethod
    def plan(cls, num_workers: int, host: str) -> list[dict]:
        return [{} for _ in range(num_workers)]  # agents exchange their metadata through `PeerInfo`

    def connect(self, peer: PeerInfo) -> None:
        self.info.check_compatible(peer)
        if peer.name not in self.peers:
            self.agent.add_remote_agent(peer.address["agent_metadata"])
            self.peers[peer.name] = peer

    def expect(self, request_id: str, dst_blocks: list[int]) -> None:
        """Nothing to prepare: the sender writes straight into the blocks and notifies us."""

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        remote = self.peers[peer]
        block_bytes = self.info.address["block_bytes"]
        runs = block_runs(src_blocks, dst_blocks, max(MAX_DESCRIPTOR_BYTES // block_bytes, 1))
        local = self.agent.get_xfer_descs(descriptors(self.info, [(s, n) for s, _, n in runs]),
                                          self.info.address["mem_type"])
        far = self.agent.get_xfer_descs(descriptors(remote, [(d, n) for _, d, n in runs]), remote.address["mem_type"])
        handle = self.agent.initialize_xfer("WRITE", local, far, peer, request_id.encode())
        if self.agent.transfer(handle) == "ERR":
            raise RuntimeError(f"NIXL could not start the KV transfer of {request_id} to {peer}")
        self.sending[request_id] = handle
        return kv_bytes(self.kv, len(src_blocks))

    def poll_sent(self) -> list[tuple[str, bool]]:
        done = []
        for request_id, handle in list(self.sending.items()):
            try:
                state = self.agent.check_xfer_state(handle)
            except Exception:  # the receiver died: NIXL raises (nixlRemoteDisconnectError) instead of "ERR"
                state = "ERR"
            if state in ("DONE", "ERR"):
                with contextlib.suppress(Exception):
                    self.agent.release_xfer_handle(handle)
                del self.sending[request_id]
                done.append((request_id, state == "DONE"))
        return done

    def poll_received(self) -> list[str]:
        notes = self.agent.get_new_notifs()
        return [msg.decode() for msgs in notes.values() for msg in msgs]
