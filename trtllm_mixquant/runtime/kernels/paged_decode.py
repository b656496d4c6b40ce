"""Paged-attention decode kernel: one query token per sequence over its block-paged KV cache.

One program per (sequence, KV head) handles the `group` query heads that share that KV head
(padded to at least 16 rows for `tl.dot`), looping over the sequence's blocks with an online
(running max / sum) fp32 softmax. Both products are fp32 `tl.dot`s in "tf32x3" precision (three
TF32 tensor-core products, about fp32 accuracy). On an H100 (bf16 cache, 64 sequences of 2048
tokens, 8 KV heads) this reads 0.87-1.57 TB/s for D 64/128, groups 1-8 and blocks 16-64;
elementwise products + `tl.sum` spilled registers and fell below 0.1 TB/s at group 8, block 64.

The grid depends only on shapes, and the wrapper never reads tensor values on the host, so the
launch can be captured in a CUDA graph with fixed B and max_blocks.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from trtllm_mixquant.runtime.kernels.paged_decode_checks import check_paged_decode_args


@triton.jit
def _paged_decode_kernel(q_ptr, k_ptr, v_ptr, out_ptr, block_tables_ptr, context_lens_ptr, scale,
                         stride_qb, stride_qh, stride_qd, stride_ks, stride_kh, stride_kd,
                         stride_vs, stride_vh, stride_vd, stride_ob, stride_oh, stride_od, stride_bt,
                         GROUP: tl.constexpr, GROUP_PAD: tl.constexpr, HEAD_DIM: tl.constexpr,
                         BLOCK_SIZE: tl.constexpr):
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    offs_g = tl.arange(0, GROUP_PAD)  # [G]
    offs_t = tl.arange(0, BLOCK_SIZE)  # [T]
    offs_d = tl.arange(0, HEAD_DIM)  # [D]
    heads = kv_head * GROUP + offs_g
    head_mask = offs_g < GROUP

    q_ptrs = q_ptr + seq * stride_qb + heads[:, None] * stride_qh + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=head_mask[:, None], other=0.0).to(tl.float32) * scale  # [G, D]

    context_len = tl.load(context_lens_ptr + seq)
    m_i = tl.full([GROUP_PAD], float("-inf"), tl.float32)  # running max of the scores
    l_i = tl.zeros([GROUP_PAD], tl.float32)  # running sum of exp(score - m_i)
    acc = tl.zeros([GROUP_PAD, HEAD_DIM], tl.float32)  # running sum of exp(score - m_i) * v
    for i in range(0, tl.cdiv(context_len, BLOCK_SIZE)):
        block = tl.load(block_tables_ptr + seq * stride_bt + i).to(tl.int64)
        slots = block * BLOCK_SIZE + offs_t  # [T]
        tok_mask = i * BLOCK_SIZE + offs_t < context_len  # [T]
        k = tl.load(k_ptr + slots[:, None] * stride_ks + kv_head * stride_kh + offs_d[None, :] * stride_kd,
                    mask=tok_mask[:, None], other=0.0).to(tl.float32)  # [T, D]
        v = tl.load(v_ptr + slots[:, None] * stride_vs + kv_head * stride_vh + offs_d[None, :] * stride_vd,
                    mask=tok_mask[:, None], other=0.0).to(tl.float32)  # [T, D]
        scores = tl.dot(q, tl.trans(k), input_precision="tf32x3")  # [G, T]
        scores = tl.where(tok_mask[None, :], scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, axis=1))  # finite: every block has a valid token
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(scores - m_new[:, None])  # [G, T]
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="tf32x3")
        m_i = m_new

    result = tl.where(l_i[:, None] > 0, acc / tl.maximum(l_i, 1e-30)[:, None], 0.0)  # context_len 0 -> 0
    out_ptrs = out_ptr + seq * stride_ob + heads[:, None] * stride_oh + offs_d[None, :] * stride_od
    tl.store(out_ptrs, result.to(out_ptr.dtype.element_ty), mask=head_mask[:, None])


def paged_decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor, block_size: int,
                           scale: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """Decode attention of one query token per sequence over its paged KV cache.

    Args:
        q: [B, H, D] fp32/fp16/bf16; query head h reads KV head h // (H // Hkv).
        k_cache, v_cache: [num_blocks * block_size, Hkv, D]; any float dtype (cast to fp32 on load).
        block_tables: [B, max_blocks] int32/int64; token p of sequence b lives in slot
            block_tables[b, p // block_size] * block_size + p % block_size. Entries past the
            sequence's last block are never read.
        context_lens: [B] int32/int64, valid tokens of each sequence (0 gives a zero output row).
        block_size: tokens per block; it and D must be powers of two >= 16.
        scale: softmax scale, e.g. D ** -0.5.
        out: optional [B, H, D] output in q's dtype, written in place.

    Returns:
        out: [B, H, D] in q's dtype.
    """
    check_paged_decode_args(q, k_cache, v_cache, block_tables, context_lens, block_size, out)
    batch, num_heads, head_dim = q.shape
    num_kv_heads = k_cache.shape[1]
    group = num_heads // num_kv_heads
    if out is None:
        out = torch.empty_like(q)
    if batch == 0:
        return out
    _paged_decode_kernel[(batch, num_kv_heads)](
        q, k_cache, v_cache, out, block_tables, context_lens, scale,
        *q.stride(), *k_cache.stride(), *v_cache.stride(), *out.stride(), block_tables.stride(0),
        GROUP=group, GROUP_PAD=max(16, triton.next_power_of_2(group)), HEAD_DIM=head_dim, BLOCK_SIZE=block_size)
    return out
