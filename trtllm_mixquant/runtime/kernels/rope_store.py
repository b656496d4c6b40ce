"""Q/K norm, rotary embedding and KV-cache store in one kernel: what sits between the q/k/v projection
and attention, per token.

Compiled by inductor, the q/k RMSNorms (Qwen3) and RoPE were six kernels a layer, and the KV store
another: in a batch-1 decode step on an H200 (Qwen3-8B shapes) 0.31 ms of 4.9, launches and gaps
more than work. Here a program takes one token's query heads (role 0) or its key and value heads
(role 1), normalizes and rotates them in fp32 with the roundings of `layers.norm.RMSNorm` and
`layers.rotary.rotate`, writes q and k out and stores k and v at the token's cache slot.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from trtllm_mixquant.runtime.kernels import INTERPRETED
from trtllm_mixquant.runtime.kernels.common import TORCH_TO_TRITON


@triton.jit
def _round(x, DTYPE: tl.constexpr, INTERPRETED: tl.constexpr):
    """fp32 x rounded to DTYPE (to nearest even) and back to fp32. The interpreter truncates fp32 ->
    bf16 casts, so there the rounding is done on the bits first (the cast is then exact)."""
    if DTYPE == tl.float32:
        return x
    if INTERPRETED and DTYPE == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        x = bits.to(tl.float32, bitcast=True)
    return x.to(DTYPE).to(tl.float32)


@triton.jit
def _norm_rope(x_ptr, w_ptr, cos, sin, eps, h, d, mask, HALF: tl.constexpr, HAS_NORM: tl.constexpr,
               DTYPE: tl.constexpr, INTERPRETED: tl.constexpr):
    """Heads [HEADS_PAD, 2 * HALF] at x_ptr (rows h, columns d of each half): RMSNorm (weight w) and
    rotate-half RoPE, as fp32 halves already rounded to DTYPE."""
    x1 = tl.load(x_ptr + d, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_ptr + HALF + d, mask=mask, other=0.0).to(tl.float32)
    if HAS_NORM:
        r = tl.rsqrt((tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / (2 * HALF) + eps)[:, None]
        w1 = tl.load(w_ptr + d).to(tl.float32)
        w2 = tl.load(w_ptr + HALF + d).to(tl.float32)
        x1 = _round(w1 * _round(x1 * r, DTYPE, INTERPRETED), DTYPE, INTERPRETED)
        x2 = _round(w2 * _round(x2 * r, DTYPE, INTERPRETED), DTYPE, INTERPRETED)
    return (_round(x1 * cos - x2 * sin, DTYPE, INTERPRETED), _round(x2 * cos + x1 * sin, DTYPE, INTERPRETED))


@triton.jit
def _rope_store_kernel(q_ptr, k_ptr, v_ptr, pos_ptr, cos_sin_ptr, qw_ptr, kw_ptr, q_out_ptr, k_out_ptr,
                       k_cache_ptr, v_cache_ptr, slots_ptr, eps,
                       stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_cs,
                       stride_kcs, stride_kch, stride_vcs, stride_vch,
                       HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEADS_PAD: tl.constexpr, HALF: tl.constexpr,
                       HAS_NORM: tl.constexpr, DTYPE: tl.constexpr, CACHE_DTYPE: tl.constexpr,
                       INTERPRETED: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    role = tl.program_id(1)
    h = tl.arange(0, HEADS_PAD)[:, None]
    d = tl.arange(0, HALF)[None, :]
    pos = tl.load(pos_ptr + t)
    cos = tl.load(cos_sin_ptr + pos * stride_cs + d).to(tl.float32)
    sin = tl.load(cos_sin_ptr + pos * stride_cs + HALF + d).to(tl.float32)
    head_dim = 2 * HALF
    if role == 0:
        mask = h < HEADS
        o1, o2 = _norm_rope(q_ptr + t * stride_qt + h * stride_qh, qw_ptr, cos, sin, eps, h, d, mask, HALF,
                            HAS_NORM, DTYPE, INTERPRETED)
        out = q_out_ptr + (t * HEADS + h) * head_dim + d
        tl.store(out, o1.to(DTYPE), mask=mask)
        tl.store(out + HALF, o2.to(DTYPE), mask=mask)
    else:
        mask = h < KV_HEADS
        o1, o2 = _norm_rope(k_ptr + t * stride_kt + h * stride_kh, kw_ptr, cos, sin, eps, h, d, mask, HALF,
                            HAS_NORM, DTYPE, INTERPRETED)
        out = k_out_ptr + (t * KV_HEADS + h) * head_dim + d
        tl.store(out, o1.to(DTYPE), mask=mask)
        tl.store(out + HALF, o2.to(DTYPE), mask=mask)
        slot = tl.load(slots_ptr + t).to(tl.int64)
        k_dst = k_cache_ptr + slot * stride_kcs + h * stride_kch + d
        tl.store(k_dst, _round(o1, CACHE_DTYPE, INTERPRETED).to(CACHE_DTYPE), mask=mask)
        tl.store(k_dst + HALF, _round(o2, CACHE_DTYPE, INTERPRETED).to(CACHE_DTYPE), mask=mask)
        v_src = v_ptr + t * stride_vt + h * stride_vh + d
        v_dst = v_cache_ptr + slot * stride_vcs + h * stride_vch + d
        for half in tl.static_range(2):
            v_half = tl.load(v_src + half * HALF, mask=mask).to(tl.float32)
            tl.store(v_dst + half * HALF, _round(v_half, CACHE_DTYPE, INTERPRETED).to(CACHE_DTYPE), mask=mask)



def rope_store(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor,
               q_weight: torch.Tensor | None, k_weight: torch.Tensor | None, eps: float, k_cache: torch.Tensor,
               v_cache: torch.Tensor, slot_mapping: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q [T, H, D], k and v [T, Hkv, D] (views of the fused projection: the head dimension contiguous) ->
    q and k normed (weights [D], both or neither) and rotated at `positions` [T] (cos_sin [P, D]: cos
    then sin of each frequency, in any float dtype), as new contiguous tensors; k and v stored at
    `slot_mapping` [T] of the caches [num_slots, Hkv, D], rounded to their dtype."""
    t, heads, dim = q.shape
    kv_heads = k.shape[1]
    if (k.shape != (t, kv_heads, dim) or v.shape != k.shape or k_cache.shape[1:] != k.shape[1:]
            or v_cache.shape[1:] != k.shape[1:] or dim % 2 or (dim // 2) & (dim // 2 - 1)):
        raise ValueError(f"rope_store: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} and caches "
                         f"{tuple(k_cache.shape)}, {tuple(v_cache.shape)} must agree on [T, heads, D] with D/2 a "
                         "power of two")
    if any(x.stride(-1) != 1 for x in (q, k, v, k_cache, v_cache)) or cos_sin.stride(-1) != 1:
        raise ValueError("rope_store: the head dimension must be contiguous in q, k, v, cos_sin and the caches")
    if (q_weight is None) != (k_weight is None):
        raise ValueError("rope_store: give both q and k norm weights, or neither")
    q_out = torch.empty(t, heads, dim, dtype=q.dtype, device=q.device)
    k_out = torch.empty(t, kv_heads, dim, dtype=k.dtype, device=k.device)
    if t == 0:
        return q_out, k_out
    has_norm = q_weight is not None
    _rope_store_kernel[(t, 2)](
        q, k, v, positions, cos_sin, q_weight if has_norm else cos_sin, k_weight if has_norm else cos_sin, q_out,
        k_out, k_cache, v_cache, slot_mapping, eps, q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0),
        v.stride(1), cos_sin.stride(0), k_cache.stride(0), k_cache.stride(1), v_cache.stride(0), v_cache.stride(1),
        HEADS=heads, KV_HEADS=kv_heads, HEADS_PAD=triton.next_power_of_2(max(heads, kv_heads)), HALF=dim // 2,
        HAS_NORM=has_norm, DTYPE=TORCH_TO_TRITON[q.dtype], CACHE_DTYPE=TORCH_TO_TRITON[k_cache.dtype],
        INTERPRETED=INTERPRETED)
    return q_out, k_out
