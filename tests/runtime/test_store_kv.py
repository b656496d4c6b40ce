"""The KV-store kernel against `index_copy_` (what `write_kv` does off CUDA).

Without a GPU the kernel runs in the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
"""

from __future__ import annotations

import pytest
import torch

ON_GPU = torch.cuda.is_available()
# Interpreters before triton 3.7 call int() on 1-element arrays, which numpy >= 2.4 rejects.
pytest.importorskip("triton", minversion=None if ON_GPU else "3.7")

from trtllm_mixquant.runtime.kernels.store_kv import store_kv  # noqa: E402

DEVICE = torch.device("cuda" if ON_GPU else "cpu")


@pytest.mark.parametrize("heads, dim, dtype, cache_dtype, index_dtype", [
    (8, 128, torch.bfloat16, torch.bfloat16, torch.int64),  # Qwen3-8B's KV heads
    (3, 64, torch.float32, torch.bfloat16, torch.int32),  # heads not a power of two; cast on store
    (1, 16, torch.float16, torch.float16, torch.int64),  # one head (a tensor-parallel shard)
])
def test_stores_what_index_copy_stores(heads, dim, dtype, cache_dtype, index_dtype):
    gen = torch.Generator().manual_seed(heads)
    tokens, slots_total = 7, 64
    # k and v as the model makes them: column slices of one fused projection output, not contiguous
    qkv = torch.randn(tokens, 4 * heads * dim, generator=gen).to(dtype).to(DEVICE)
    k = qkv[:, 2 * heads * dim:3 * heads * dim].view(tokens, heads, dim)
    v = qkv[:, 3 * heads * dim:].view(tokens, heads, dim)
    slots = torch.randperm(slots_total, generator=gen)[:tokens].to(index_dtype).to(DEVICE)
    k_cache = torch.randn(slots_total, heads, dim, generator=gen).to(cache_dtype).to(DEVICE)
    v_cache = torch.randn(slots_total, heads, dim, generator=gen).to(cache_dtype).to(DEVICE)
    want_k, want_v = k_cache.clone(), v_cache.clone()
    want_k.index_copy_(0, slots.long(), k.to(cache_dtype))
    want_v.index_copy_(0, slots.long(), v.to(cache_dtype))
    store_kv(k_cache, v_cache, k, v, slots)
    assert torch.equal(k_cache, want_k) and torch.equal(v_cache, want_v)  # other slots untouched too


def test_no_tokens_and_mismatched_shapes():
    cache = torch.zeros(4, 2, 16, device=DEVICE)
    store_kv(cache, cache.clone(), torch.empty(0, 2, 16, device=DEVICE), torch.empty(0, 2, 16, device=DEVICE),
             torch.empty(0, dtype=torch.long, device=DEVICE))
    assert not cache.any()
    with pytest.raises(ValueError, match="must agree"):
        store_kv(cache, cache.clone(), torch.zeros(1, 3, 16, device=DEVICE), torch.zeros(1, 3, 16, device=DEVICE),
                 torch.zeros(1, dtype=torch.long, device=DEVICE))
