"""A KV transport of a test's own: blocks travel as files in a shared folder. Registered from the
tests (never from the package) to show that worker processes pick up a transport without any change
to their code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from trtllm_mixquant.transfer.base import PeerInfo, kv_bytes, pool_info


class FileKVTransport:
    replaceable = True
    supports_pull = False

    def __init__(self, name: str, kv, folder: str):
        self.kv, self.folder = kv, Path(folder)
        self.info = pool_info(name, kv, folder=folder)
        self.peers: dict[str, PeerInfo] = {}
        self.expected: dict[str, list[int]] = {}
        self.sent: list[str] = []

    @classmethod
    def available(cls) -> bool:
        return True

    @classmethod
    def plan(cls, num_workers: int, host: str) -> list[dict]:
        folder = tempfile.mkdtemp(prefix="kv-files-")
        return [{"folder": folder} for _ in range(num_workers)]

    def connect(self, peer: PeerInfo) -> None:
        self.info.check_compatible(peer)
        self.peers[peer.name] = peer

    def expect(self, request_id: str, dst_blocks: list[int]) -> None:
        self.expected[request_id] = dst_blocks

    def forget(self, request_id: str) -> None:
        self.expected.pop(request_id, None)

    def send(self, request_id: str, src_blocks: list[int], peer: str, dst_blocks: list[int]) -> int:
        index = torch.tensor(src_blocks)
        staging = torch.stack([self.kv.k_blocks.index_select(1, index), self.kv.v_blocks.index_select(1, index)])
        path = self.folder / f"{peer}-{request_id.replace('/', '_')}"
        torch.save((request_id, staging), str(path) + ".tmp")
        os.rename(str(path) + ".tmp", path)  # appears whole
        self.sent.append(request_id)
        return kv_bytes(self.kv, len(src_blocks))

    def poll_sent(self) -> list[tuple[str, bool]]:
        done, self.sent = self.sent, []
        return [(rid, True) for rid in done]

    def poll_received(self) -> list[str]:
        landed = []
        for path in self.folder.glob(f"{self.info.name}-*"):
            if path.suffix == ".tmp":
                continue
            request_id, staging = torch.load(path)
            path.unlink()
            dst = self.expected.pop(request_id, None)
            if dst is not None:
                index = torch.tensor(dst)
                self.kv.k_blocks.index_copy_(1, index, staging[0])
                self.kv.v_blocks.index_copy_(1, index, staging[1])
                landed.append(request_id)
        return landed
