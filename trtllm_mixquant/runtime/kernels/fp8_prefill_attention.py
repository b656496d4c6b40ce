"""FP8 prefill attention (flash-attention forward with E4M3 tensor-core products), for the context
engine's prompt tokens; numerics as in `fp8_attention_reference` (per-head dynamic scales, the
softmax weights quantized to E4M3 times `P_SCALE` for P·V, fp32 online softmax).

One program per (block of BLOCK_M queries, query head, segment) loops over the keys its causal
window reaches, BLOCK_N at a time: first the keys every row of the block sees (no masks), then the
tiles that cross the diagonal. Q, K and V are quantized to FP8 in HBM before the kernel, V into a
[Hkv, D, Tk] copy (the layout FP8 P.V products take on Hopper).
Under the Triton interpreter (CPU tests) the products run in fp32 on the same FP8 values and P is
not quantized: the interpreter's fp32 -> E4M3 conversion rounds differently from the hardware's
round-to-nearest-even (25 of 1,024 values of a test tensor came out one or two steps off), so the
CPU test compares against the reference with P unquantized and the GPU test with it quantized.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from trtllm_mixquant.runtime.kernels import INTERPRETED
from trtllm_mixquant.runtime.kernels.fp8_attention_reference import P_SCALE, head_scales, to_fp8


@triton.jit
def _attend_tile(q, k_ptrs, v_ptrs, cols, pos, n_k, m_i, l_i, acc, score_scale, PSCALE: tl.constexpr,
                 FP8_DOT: tl.constexpr, MASKED: tl.constexpr):
    """One BLOCK_N tile of keys into the online softmax; MASKED: the tile crosses the causal diagonal
    or the segment's end (the others are read and scored without masks)."""
    if MASKED:
        k = tl.load(k_ptrs, mask=cols[None, :] < n_k, other=0.0)  # [D, N] fp8
        v = tl.load(v_ptrs, mask=cols[:, None] < n_k, other=0.0)  # [N, D] fp8, N contiguous
    else:
        k = tl.load(k_ptrs)
        v = tl.load(v_ptrs)
    if FP8_DOT:
        s = tl.dot(q, k)
    else:
        s = tl.dot(q.to(tl.float32), k.to(tl.float32))
    s = s * score_scale
    if MASKED:
        s = tl.where((cols[None, :] <= pos[:, None]) & (cols[None, :] < n_k), s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    p = tl.exp2(s - m_new[:, None])
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    if FP8_DOT:
        acc = tl.dot((p * PSCALE).to(tl.float8e4nv), v, acc)
    else:
        acc += tl.dot(p * PSCALE, v.to(tl.float32))
    return m_new, l_i, acc


@triton.jit
def _fp8_prefill_kernel(q_ptr, k_ptr, vt_ptr, o_ptr, q_scale_ptr, k_scale_ptr, v_scale_ptr, cu_q_ptr, cu_k_ptr,
                        sm_scale, stride_qt, stride_qh, stride_kt, stride_kh, stride_vh, stride_vd,
                        stride_ot, stride_oh, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_N: tl.constexpr, PSCALE: tl.constexpr, FP8_DOT: tl.constexpr):
    block, head, seg = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    q0, q1 = tl.load(cu_q_ptr + seg), tl.load(cu_q_ptr + seg + 1)
    k0, k1 = tl.load(cu_k_ptr + seg), tl.load(cu_k_ptr + seg + 1)
    n_q, n_k = q1 - q0, k1 - k0
    if block * BLOCK_M >= n_q:
        return
    kv_head = head // GROUP
    offs_m = block * BLOCK_M + tl.arange(0, BLOCK_M)  # query rows within the segment
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + (q0 + offs_m)[:, None] * stride_qt + head * stride_qh + offs_d[None, :],
                mask=offs_m[:, None] < n_q, other=0.0)  # [M, D] fp8
    # log2(e) folded in: the softmax runs on exp2
    score_scale = sm_scale * tl.load(q_scale_ptr + head) * tl.load(k_scale_ptr + kv_head) * 1.4426950408889634
    pos = n_k - n_q + offs_m  # each query's position among the segment's keys
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    k_base = k_ptr + k0 * stride_kt + kv_head * stride_kh + offs_d[:, None]  # [D, 1]
    v_base = vt_ptr + kv_head * stride_vh + offs_d[None, :] * stride_vd + k0  # [1, D]
    # Keys before the block's first query position are seen by every row of the block: no masks there.
    unmasked_end = (n_k - n_q + block * BLOCK_M) // BLOCK_N * BLOCK_N
    for start in range(0, unmasked_end, BLOCK_N):
        cols = start + offs_n
        m_i, l_i, acc = _attend_tile(q, k_base + cols[None, :] * stride_kt, v_base + cols[:, None], cols, pos, n_k,
                                     m_i, l_i, acc, score_scale, PSCALE, FP8_DOT, False)
    end = tl.minimum(n_k, n_k - n_q + (block + 1) * BLOCK_M)
    for start in range(unmasked_end, end, BLOCK_N):
        cols = start + offs_n
        m_i, l_i, acc = _attend_tile(q, k_base + cols[None, :] * stride_kt, v_base + cols[:, None], cols, pos, n_k,
                                     m_i, l_i, acc, score_scale, PSCALE, FP8_DOT, True)
    out = acc * (tl.load(v_scale_ptr + kv_head) / PSCALE) / l_i[:, None]
    tl.store(o_ptr + (q0 + offs_m)[:, None] * stride_ot + head * stride_oh + offs_d[None, :],
             out.to(o_ptr.dtype.element_ty), mask=offs_m[:, None] < n_q)


def fp8_prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor,
                          cu_k: torch.Tensor, max_q: int, scale: float, block_m: int = 128,
                          block_n: int = 64) -> torch.Tensor:
    """q [Tq, H, D], k, v [Tk, Hkv, D] (bf16/fp16/fp32), cu_q/cu_k [S + 1] int32 -> [Tq, H, D] in q's dtype.

    V is quantized into a [Hkv, D, Tk] copy: Hopper's FP8 tensor-core products take the P.V operand
    with the keys contiguous."""
    heads, head_dim = q.shape[1], q.shape[2]
    if heads % k.shape[1] or head_dim not in (64, 128):
        raise ValueError(f"FP8 attention needs query heads a multiple of KV heads and head_dim 64 or 128 "
                         f"(got {heads}, {k.shape[1]}, {head_dim})")
    sq, sk, sv = head_scales(q), head_scales(k), head_scales(v)
    qq, kq, vt = to_fp8(q, sq), to_fp8(k, sk), to_fp8(v, sv).permute(1, 2, 0).contiguous()
    out = torch.empty_like(q)
    grid = (triton.cdiv(max_q, block_m), heads, cu_q.numel() - 1)
    _fp8_prefill_kernel[grid](qq, kq, vt, out, sq, sk, sv, cu_q, cu_k, scale, qq.stride(0), qq.stride(1), kq.stride(0),
                              kq.stride(1), vt.stride(0), vt.stride(1), out.stride(0), out.stride(1),
                              GROUP=heads // k.shape[1], HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n,
                              PSCALE=P_SCALE, FP8_DOT=not INTERPRETED,
                              num_warps=8 if block_m >= 128 else 4, num_stages=3)
    return out
