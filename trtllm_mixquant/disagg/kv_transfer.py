"""KV-cache transfer between workers: what both transports share.

A context worker moves a request's KV blocks into the blocks a generation worker reserved for it.
Two transports implement the same interface (`info`, `connect`, `send`, `poll_sent`, `poll_received`):
- `nixl_transfer.NixlKVTransfer`: NIXL (the library TensorRT-LLM's cache transceiver uses), one-sided
  UCX writes straight into the destination blocks, host or GPU memory. The default.
- `dist_transfer.TorchDistKVTransfer`: torch.distributed send/recv (gloo on CPU, NCCL between GPUs)
  through one staging buffer per request; the fallback where NIXL is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from trtllm_mixquant.manifest import KVCacheLayout

class KVLayoutError(ValueError):
    """Two workers' KV caches have different layouts; no KV can move between them."""


@dataclass(frozen=True)
class KVPoolInfo:
    """What a peer needs to address a worker's KV pool: [layers, blocks, block_size, Hkv, D] for K and V."""

    agent_name: str
    agent_metadata: bytes
    layout: KVCacheLayout
    dtype: str
    k_base: int
    v_base: int
    num_blocks: int
    block_bytes: int  # one block of one layer
    mem_type: str  # "DRAM" or "VRAM"
    device_id: int
    rank: int = -1  # torch.distributed rank (the torch transport only)

    def check_compatible(self, other: KVPoolInfo) -> None:
        problems = self.layout.mismatches(other.layout)
        if self.dtype != other.dtype:
            problems.append(f"dtype: {self.dtype} vs {other.dtype}")
        if problems:
            raise KVLayoutError(f"KV caches of {self.agent_name} and {other.agent_name} differ ("
                                + "; ".join(problems) + "); build both engines with `python build.py --phase both`.")


def transport_available(kind: str) -> bool:
    if kind == "torch":
        return True
    try:
        import nixl  # noqa: F401
    except ImportError:
        return False
    return True
