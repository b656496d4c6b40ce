"""The q/k norm + RoPE + KV-store kernel against the modules it replaces on CUDA (`RMSNorm`,
`RotaryEmbedding`, `index_copy_`).

Without a GPU the kernel runs in the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
"""

from __future__ import annotations

import pytest
import torch

ON_GPU = torch.cuda.is_available()
# Interpreters before triton 3.7 call int() on 1-element arrays, which numpy >= 2.4 rejects.
pytest.importorskip("triton", minversion=None if ON_GPU else "3.7")

from trtllm_mixquant.runtime.kernels.rope_store import rope_store  # noqa: E402
from trtllm_mixquant.runtime.layers.norm import RMSNorm  # noqa: E402
from trtllm_mixquant.runtime.layers.rotary import RotaryEmbedding  # noqa: E402

DEVICE = torch.device("cuda" if ON_GPU else "cpu")
SLOTS = 64
MANTISSA_BITS = {torch.bfloat16: 7, torch.float16: 10, torch.float32: 23}


def ulps(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """|got - want| [..., D] in units of the last place of want's dtype at the largest magnitude of
    want's head (RoPE's differences cancel, so an element's own magnitude can be far smaller)."""
    scale = want.float().abs().amax(-1, keepdim=True).expand_as(want)
    exponent = torch.frexp(scale.clamp_min(torch.finfo(want.dtype).tiny))[1]
    ulp = torch.ldexp(torch.ones_like(want.float()), exponent - 1 - MANTISSA_BITS[want.dtype])
    return (got.float() - want.float()).abs() / ulp


def case(heads, kv_heads, dim, dtype, norm, tokens=7, index_dtype=torch.int64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    qkv = (torch.randn(tokens, (heads + 2 * kv_heads) * dim, generator=gen) * 3).to(dtype).to(DEVICE)
    q, k, v = qkv.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)  # strided views, as the model has
    q, k, v = q.view(tokens, heads, dim), k.view(tokens, kv_heads, dim), v.view(tokens, kv_heads, dim)
    rotary = RotaryEmbedding(dim, 4096, 1e6, None).to(dtype).to(DEVICE)  # its table in the model's dtype, as loaded
    positions = torch.randint(0, 4096, (tokens,), generator=gen).to(DEVICE)
    slots = torch.randperm(SLOTS, generator=gen)[:tokens].to(index_dtype).to(DEVICE)
    norms = None
    if norm:
        norms = [RMSNorm(dim, 1e-6).to(dtype).to(DEVICE) for _ in range(2)]
        for n in norms:
            n.weight.data = (1 + 0.3 * torch.randn(dim, generator=gen)).to(dtype).to(DEVICE)
    caches = [torch.randn(SLOTS, kv_heads, dim, generator=gen).to(dtype).to(DEVICE) for _ in range(2)]
    return q, k, v, positions, rotary, norms, caches, slots


@torch.inference_mode()
def reference(q, k, v, positions, rotary, norms, caches, slots):
    if norms is not None:
        q, k = norms[0](q), norms[1](k)
    q, k = rotary(positions, q, k)
    k_cache, v_cache = (c.clone() for c in caches)
    k_cache.index_copy_(0, slots.long(), k.to(k_cache.dtype))
    v_cache.index_copy_(0, slots.long(), v.to(v_cache.dtype))
    return q, k, k_cache, v_cache


@torch.inference_mode()
def kernel(q, k, v, positions, rotary, norms, caches, slots):
    k_cache, v_cache = (c.clone() for c in caches)
    weights = (None, None) if norms is None else (norms[0].weight, norms[1].weight)
    q_out, k_out = rope_store(q, k, v, positions, rotary.cos_sin, *weights, 1e-6, k_cache, v_cache, slots)
    return q_out, k_out, k_cache, v_cache


@pytest.mark.parametrize("heads, kv_heads, dim, dtype, norm, index_dtype", [
    (32, 8, 128, torch.bfloat16, True, torch.int64),  # Qwen3-8B
    (4, 2, 64, torch.float16, False, torch.int32),  # Llama-style: no q/k norm
    (3, 1, 32, torch.float32, True, torch.int64),  # heads not a power of two, one KV head
])
def test_equals_the_modules_it_replaces(heads, kv_heads, dim, dtype, norm, index_dtype):
    args = case(heads, kv_heads, dim, dtype, norm, index_dtype=index_dtype)
    got, want = kernel(*args), reference(*args)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        # The roundings are torch's, one by one; only the order of the fp32 sum of squares differs
        # (and, on a GPU, rsqrt's last bit and fused multiply-adds), which changes the norm's factor in
        # its last fp32 bits. In bf16/fp16 that shows as a rare rounding flip (one unit in the last
        # place); in fp32 it passes through the weight (up to ~2x here) and RoPE's products, each
        # adding half a unit of its own: a few units at the head's scale (4 bounds what we saw, 3).
        off = ulps(g, w)
        if dtype == torch.float32:
            assert off.max() <= 4, off.max()
        else:
            assert off.max() <= 1 and (off > 0).float().mean() < 0.01, (off.max(), (off > 0).float().mean())
    v, caches, slots = args[2], args[6], args[7].long()
    untouched = torch.ones(SLOTS, dtype=torch.bool, device=DEVICE)
    untouched[slots] = False
    for cache, before in zip(got[2:], caches):
        assert torch.equal(cache[untouched], before[untouched])
    assert torch.equal(got[3][slots], v.to(got[3].dtype))  # v is stored as it came


def test_no_tokens_and_bad_inputs():
    q, k, v, positions, rotary, norms, caches, slots = case(2, 1, 16, torch.float32, True, tokens=0)
    q_out, k_out = rope_store(q, k, v, positions, rotary.cos_sin, norms[0].weight, norms[1].weight, 1e-6, *caches,
                              slots)
    assert q_out.shape == (0, 2, 16) and k_out.shape == (0, 1, 16)
    q, k, v, positions, rotary, norms, caches, slots = case(2, 1, 16, torch.float32, True)
    with pytest.raises(ValueError, match="must agree"):
        rope_store(q, k[:, :, :8], v, positions, rotary.cos_sin, None, None, 1e-6, *caches, slots)
    with pytest.raises(ValueError, match="both"):
        rope_store(q, k, v, positions, rotary.cos_sin, norms[0].weight, None, 1e-6, *caches, slots)
