"""The paged KV cache: one pool of blocks shared by the context and generation phases."""

from __future__ import annotations

import torch

from trtllm_mixquant.manifest import KVCacheLayout

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class KVCache:
    """K and V for every layer: `k[layer]`, `v[layer]` are [num_blocks * block_size, Hkv, D] views of
    one [num_layers, num_blocks, block_size, Hkv, D] tensor each, in the layout's dtype (Hkv: this
    tensor-parallel rank's KV heads)."""

    def __init__(self, layout: KVCacheLayout, num_blocks: int, device: torch.device):
        self.layout, self.num_blocks = layout, num_blocks
        dtype = DTYPES[layout.dtype]
        shape = (layout.num_layers, num_blocks, layout.block_size, layout.local_kv_heads, layout.head_dim)
        self.k_blocks = torch.zeros(shape, dtype=dtype, device=device)
        self.v_blocks = torch.zeros(shape, dtype=dtype, device=device)
        flat = (layout.num_layers, num_blocks * layout.block_size, layout.local_kv_heads, layout.head_dim)
        self.k, self.v = self.k_blocks.view(flat), self.v_blocks.view(flat)

    @staticmethod
    def blocks_that_fit(layout: KVCacheLayout, memory_bytes: int) -> int:
        return memory_bytes // (layout.bytes_per_token() * layout.block_size)
