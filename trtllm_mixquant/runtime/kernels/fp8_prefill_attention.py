"""8-bit prefill attention (flash-attention forward on Hopper's 8-bit tensor cores), for the context
engine's prompt tokens; numerics as in `fp8_attention_reference`: Q K^T on int8 Q R and K R (Hadamard-
rotated, per-head dynamic scales) with exact int32 sums, P·V on E4M3 (the softmax weights times
`P_SCALE`, V per head), fp32 online softmax.

`fp8_head_quantize` makes the int8 Q R and K R and the E4M3 V^T first ([Hkv, D, keys]: the P·V
operand of Hopper's FP8 products must have the keys contiguous). One program per (block of BLOCK_M
queries, query head, segment), last query blocks first (they have the most keys), loops over the
keys its causal window reaches, BLOCK_N at a time: first the keys every row of the block sees (no
masks), then the tiles that cross the diagonal. Tiles are read through TMA tensor descriptors; one
that runs past its segment reads the next segment's keys (or TMA's zeros past the tensor), which the
mask drops. P_SCALE is folded into the exponent (exp2(s - m + log2 P_SCALE)) and the score scale
into one FMA.

On an H100 (32 query / 8 KV heads, head_dim 128, per layer, the quantization prologue included):
1.18 ms at 8K tokens, 12.3 ms at 32K, 1.93 ms for 2K queries over 30K cached keys; cuDNN's BF16
kernel took 0.92 and 14.9 ms and flash's variable-length BF16 kernel 3.02 ms, and the previous
version (Q and K in E4M3) 1.29, 12.3 and 1.80 ms. Tiles: the best of those tried there (64 x 128 with
4 or 8 warps and 2 or 3 stages; 128 x 128 and 128 x 64 with 8 warps).
Under the Triton interpreter (CPU tests) the products run in fp32 on the same 8-bit values (exact for
Q K^T) and P is not quantized: the interpreter's FP8 products are wrong, so the CPU test compares
against the reference with P unquantized and the GPU test with it quantized.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from trtllm_mixquant.runtime.kernels import INTERPRETED
from trtllm_mixquant.runtime.kernels.fp8_attention_reference import P_SCALE
from trtllm_mixquant.runtime.kernels.fp8_head_quantize import quantize_heads


@triton.jit
def _attend_tile(q, k_desc, vt_desc, row, vt_column, kv_col, cols, pos, n_k, m_i, l_i, acc, score_scale,
                 LOG2_PSCALE: tl.constexpr, MASKED: tl.constexpr, INTERPRETED: tl.constexpr):
    """Keys [row, row + BLOCK_N) (their values at V^T columns from vt_column) of the KV head at columns
    kv_col into the online softmax (m_i in the scaled log2 domain); MASKED: the tile crosses the
    causal diagonal or the segment's end."""
    k = k_desc.load([row, kv_col])  # [N, D] int8
    if INTERPRETED:  # int8 products summed in fp32: exact (|sum| <= 128 * 127^2 < 2^24)
        s = tl.dot(q.to(tl.float32), k.T.to(tl.float32))
    else:
        # int32 -> fp32 without the conversion instruction (it issues at a quarter of exp2's rate):
        # |s| < 2^22, so s + 1.5 * 2^23 read as an fp32 bit pattern is exactly that value. H100, 32K:
        # 12.3 ms against 13.5 with the conversion (within 3% either way at 8K and 2K over 30K).
        s = (tl.dot(q, k.T) + 0x4B400000).to(tl.float32, bitcast=True) - 12582912.0
    if MASKED:
        s = tl.where((cols[None, :] <= pos[:, None]) & (cols[None, :] < n_k), s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1) * score_scale)
    p = tl.exp2(s * score_scale - (m_new - LOG2_PSCALE)[:, None])  # P * P_SCALE
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    vt = vt_desc.load([kv_col, vt_column])  # [D, N] fp8, keys contiguous
    if INTERPRETED:
        acc = tl.dot(p, vt.T.to(tl.float32), acc)
    else:
        acc = tl.dot(p.to(tl.float8e4nv), vt.T, acc)
    return m_new, l_i, acc


@triton.jit
def _fp8_prefill_kernel(q_desc, k_desc, vt_desc, o_ptr, q_scale_ptr, k_scale_ptr, v_scale_ptr, cu_q_ptr, cu_k_ptr,
                        cu_vt_ptr, sm_scale, stride_ot, stride_oh, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, LOG2_PSCALE: tl.constexpr,
                        INTERPRETED: tl.constexpr):
    block, head, seg = tl.num_programs(0) - 1 - tl.program_id(0), tl.program_id(1), tl.program_id(2)
    q0, q1 = tl.load(cu_q_ptr + seg), tl.load(cu_q_ptr + seg + 1)
    k0, k1 = tl.load(cu_k_ptr + seg), tl.load(cu_k_ptr + seg + 1)
    vt0 = tl.load(cu_vt_ptr + seg)
    n_q, n_k = q1 - q0, k1 - k0
    if block * BLOCK_M >= n_q:
        return
    kv_head = head // GROUP
    offs_m = block * BLOCK_M + tl.arange(0, BLOCK_M)  # query rows within the segment
    offs_n = tl.arange(0, BLOCK_N)
    q = q_desc.load([q0 + block * BLOCK_M, head * HEAD_DIM])  # [M, D] int8
    # log2(e) folded in (the softmax runs on exp2), and 1 / D: Q and K are rotated by R, R R^T = D I
    score_scale = (sm_scale * tl.load(q_scale_ptr + head) * tl.load(k_scale_ptr + kv_head) * 1.4426950408889634
                   / HEAD_DIM)
    pos = n_k - n_q + offs_m  # each query's position among the segment's keys
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    kv_col = kv_head * HEAD_DIM
    # Keys before the block's first query position are seen by every row of the block: no masks there.
    unmasked_end = (n_k - n_q + block * BLOCK_M) // BLOCK_N * BLOCK_N
    for start in range(0, unmasked_end, BLOCK_N):
        m_i, l_i, acc = _attend_tile(q, k_desc, vt_desc, k0 + start, vt0 + start, kv_col, start + offs_n, pos, n_k, m_i, l_i,
                                     acc, score_scale, LOG2_PSCALE, False, INTERPRETED)
    end = tl.minimum(n_k, n_k - n_q + (block + 1) * BLOCK_M)
    for start in range(unmasked_end, end, BLOCK_N):
        m_i, l_i, acc = _attend_tile(q, k_desc, vt_desc, k0 + start, vt0 + start, kv_col, start + offs_n, pos, n_k, m_i, l_i,
                                     acc, score_scale, LOG2_PSCALE, True, INTERPRETED)
    out = acc * tl.load(v_scale_ptr + kv_head) / l_i[:, None]
    offs_d = tl.arange(0, HEAD_DIM)
    tl.store(o_ptr + (q0 + offs_m)[:, None] * stride_ot + head * stride_oh + offs_d[None, :],
             out.to(o_ptr.dtype.element_ty), mask=offs_m[:, None] < n_q)


def fp8_prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor,
                          cu_k: torch.Tensor, max_q: int, max_k: int, scale: float,
                          kv_rows: torch.Tensor | None = None, block_m: int = 64, block_n: int = 128) -> torch.Tensor:
    """q [Tq, H, D] (bf16/fp16/fp32); k, v [Tk, Hkv, D], or with kv_rows [Tk] the KV caches [slots, Hkv,
    D] read at those rows; cu_q, cu_k [S + 1] int32; max_q, max_k: the longest segment's queries and
    keys -> [Tq, H, D] in q's dtype."""
    heads, head_dim = q.shape[1], q.shape[2]
    if heads % k.shape[1] or head_dim not in (64, 128):
        raise ValueError(f"FP8 attention needs query heads a multiple of KV heads and head_dim 64 or 128 "
                         f"(got {heads}, {k.shape[1]}, {head_dim})")
    x = quantize_heads(q, k, v, cu_q, cu_k, max_q, max_k, kv_rows)
    kv_width = x.k8.shape[1] * head_dim
    q_desc = TensorDescriptor.from_tensor(x.q8.view(x.q8.shape[0], heads * head_dim), [block_m, head_dim])
    k_desc = TensorDescriptor.from_tensor(x.k8.view(x.k8.shape[0], kv_width), [block_n, head_dim])
    vt_desc = TensorDescriptor.from_tensor(x.vt8.view(kv_width, x.vt8.shape[2]), [head_dim, block_n])
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    grid = (triton.cdiv(max_q, block_m), heads, cu_q.numel() - 1)
    _fp8_prefill_kernel[grid](q_desc, k_desc, vt_desc, out, x.q_scale, x.k_scale, x.v_scale, cu_q, cu_k, x.cu_vt,
                              scale, out.stride(0), out.stride(1), GROUP=heads // k.shape[1], HEAD_DIM=head_dim,
                              BLOCK_M=block_m, BLOCK_N=block_n, LOG2_PSCALE=math.log2(P_SCALE),
                              INTERPRETED=INTERPRETED, num_warps=4, num_stages=3)
    return out
