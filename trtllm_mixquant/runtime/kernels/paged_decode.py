"""Paged-attention decode kernel: one query token per sequence over its block-paged KV cache.

One program per (sequence, KV head, split) handles the `group` query heads that share that KV
head (padded to at least 16 rows for `tl.dot`), looping over its split's keys `TILE_TOKENS` at a
time (each token's slot looked up in the block table, so a tile spans several small blocks) with an
online (running max / sum) fp32 softmax. With a bf16 (fp16) query and cache the products are bf16
(fp16) `tl.dot`s with fp32 sums, as in flash attention: q.k is exact products of the stored values,
and the probabilities are rounded to the cache's dtype before p.v. An fp32 query (tests, fp32 engines)
keeps fp32 `tl.dot`s in "tf32x3" precision (three TF32 tensor-core products, about fp32 accuracy).
An earlier version (one block a step, tf32x3 products on bf16 caches) read 0.87-1.57 TB/s on an
H100 (64 sequences of 2048 tokens, 8 KV heads, one split).

Split-K ("flash-decoding"): with few sequences, B * Hkv programs leave most SMs idle (one
32K-token sequence of Qwen3-8B is 8 programs). `choose_num_splits` then splits each sequence's
blocks into `num_splits` contiguous ranges, computed in the kernel from context_len; each split
writes its unnormalised partial (acc, running max m, running sum l) in fp32 to a workspace and
`_combine_splits_kernel` merges them with log-sum-exp rescaling. One split keeps the single-kernel
path with no workspace.

The grid depends only on shapes and `num_splits` (a Python int chosen from shapes), and the
wrapper never reads tensor values on the host, so the launch can be captured in a CUDA graph with
fixed B and max_blocks.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from trtllm_mixquant.runtime.kernels import INTERPRETED
from trtllm_mixquant.runtime.kernels.common import half_dot
from trtllm_mixquant.runtime.kernels.paged_decode_checks import MAX_NUM_SPLITS, check_paged_decode_args

DEFAULT_NUM_SMS = 132  # H100 / H200 SXM; used off CUDA (the Triton interpreter), where no device says
TILE_TOKENS = 64  # keys a program reads per loop step (several blocks when blocks are smaller)


@triton.jit
def _paged_decode_kernel(q_ptr, k_ptr, v_ptr, out_ptr, ws_acc_ptr, ws_m_ptr, ws_l_ptr, block_tables_ptr,
                         context_lens_ptr, scale, stride_qb, stride_qh, stride_qd, stride_ks, stride_kh, stride_kd,
                         stride_vs, stride_vh, stride_vd, stride_ob, stride_oh, stride_od, stride_bt,
                         stride_wb, stride_wh, stride_ws, stride_mb, stride_mh,
                         GROUP: tl.constexpr, GROUP_PAD: tl.constexpr, HEAD_DIM: tl.constexpr,
                         BLOCK_SIZE: tl.constexpr, TILE: tl.constexpr, NUM_SPLITS: tl.constexpr,
                         HALF_DOTS: tl.constexpr, INTERPRETED: tl.constexpr):
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    offs_g = tl.arange(0, GROUP_PAD)  # [G]
    offs_t = tl.arange(0, TILE)  # [T]
    offs_d = tl.arange(0, HEAD_DIM)  # [D]
    heads = kv_head * GROUP + offs_g
    head_mask = offs_g < GROUP

    q_ptrs = q_ptr + seq * stride_qb + heads[:, None] * stride_qh + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=head_mask[:, None], other=0.0)  # [G, D]
    if not HALF_DOTS:
        q = q.to(tl.float32) * scale

    context_len = tl.load(context_lens_ptr + seq)
    num_tiles = tl.cdiv(context_len, TILE)
    # Split s takes tiles [s * n // S, (s + 1) * n // S): sizes differ by at most one, and when
    # n < S some ranges are empty (the loop does not run: m = -inf, l = 0, acc = 0).
    first_tile = split * num_tiles // NUM_SPLITS
    end_tile = (split + 1) * num_tiles // NUM_SPLITS
    m_i = tl.full([GROUP_PAD], float("-inf"), tl.float32)  # running max of the scores
    l_i = tl.zeros([GROUP_PAD], tl.float32)  # running sum of exp(score - m_i)
    acc = tl.zeros([GROUP_PAD, HEAD_DIM], tl.float32)  # running sum of exp(score - m_i) * v
    for i in range(first_tile, end_tile):
        pos = i * TILE + offs_t  # [T] positions in the sequence, TILE / BLOCK_SIZE blocks of it
        tok_mask = pos < context_len  # also keeps the block-table read inside the sequence's blocks
        block = tl.load(block_tables_ptr + seq * stride_bt + pos // BLOCK_SIZE, mask=tok_mask, other=0).to(tl.int64)
        slots = block * BLOCK_SIZE + pos % BLOCK_SIZE  # [T]
        k = tl.load(k_ptr + slots[:, None] * stride_ks + kv_head * stride_kh + offs_d[None, :] * stride_kd,
                    mask=tok_mask[:, None], other=0.0)  # [T, D]
        v = tl.load(v_ptr + slots[:, None] * stride_vs + kv_head * stride_vh + offs_d[None, :] * stride_vd,
                    mask=tok_mask[:, None], other=0.0)  # [T, D]
        if HALF_DOTS:  # bf16/fp16 products, fp32 sums: exact products of the stored values, as flash does
            scores = half_dot(q, tl.trans(k), INTERPRETED) * scale  # [G, T]
        else:
            scores = tl.dot(q, tl.trans(k.to(tl.float32)), input_precision="tf32x3")
        scores = tl.where(tok_mask[None, :], scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, axis=1))  # finite: every tile has a valid token
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(scores - m_new[:, None])  # [G, T]
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if HALF_DOTS:  # p rounded to the cache's dtype for the second product (flash attention's choice)
            acc = acc * alpha[:, None] + half_dot(p.to(v.dtype), v, INTERPRETED)
        else:
            acc = acc * alpha[:, None] + tl.dot(p, v.to(tl.float32), input_precision="tf32x3")
        m_i = m_new

    if NUM_SPLITS == 1:
        result = tl.where(l_i[:, None] > 0, acc / tl.maximum(l_i, 1e-30)[:, None], 0.0)  # context_len 0 -> 0
        out_ptrs = out_ptr + seq * stride_ob + heads[:, None] * stride_oh + offs_d[None, :] * stride_od
        tl.store(out_ptrs, result.to(out_ptr.dtype.element_ty), mask=head_mask[:, None])
    else:
        ws_acc_ptrs = (ws_acc_ptr + seq * stride_wb + heads[:, None] * stride_wh + split * stride_ws
                       + offs_d[None, :])
        tl.store(ws_acc_ptrs, acc, mask=head_mask[:, None])
        ws_ml = seq * stride_mb + heads * stride_mh + split
        tl.store(ws_m_ptr + ws_ml, m_i, mask=head_mask)
        tl.store(ws_l_ptr + ws_ml, l_i, mask=head_mask)


@triton.jit
def _combine_splits_kernel(out_ptr, ws_acc_ptr, ws_m_ptr, ws_l_ptr, stride_ob, stride_oh, stride_od,
                           stride_wb, stride_wh, stride_ws, stride_mb, stride_mh,
                           HEAD_DIM: tl.constexpr, NUM_SPLITS: tl.constexpr, SPLITS_PAD: tl.constexpr):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    offs_s = tl.arange(0, SPLITS_PAD)  # [S]
    offs_d = tl.arange(0, HEAD_DIM)  # [D]
    ml_ptrs = seq * stride_mb + head * stride_mh + offs_s
    m = tl.load(ws_m_ptr + ml_ptrs, mask=offs_s < NUM_SPLITS, other=float("-inf"))  # [S]
    l = tl.load(ws_l_ptr + ml_ptrs, mask=offs_s < NUM_SPLITS, other=0.0)  # [S]
    m_max = tl.max(m, axis=0)
    m_max = tl.where(m_max == float("-inf"), 0.0, m_max)  # every split empty: keep exp() at exp(-inf) = 0
    l_sum = tl.sum(tl.exp(m - m_max) * l, axis=0)  # empty splits weigh exp(-inf) = 0
    acc = tl.zeros([HEAD_DIM], tl.float32)  # [D]; one split at a time keeps registers flat in S
    for s in range(NUM_SPLITS):
        m_s = tl.load(ws_m_ptr + seq * stride_mb + head * stride_mh + s)
        acc_s = tl.load(ws_acc_ptr + seq * stride_wb + head * stride_wh + s * stride_ws + offs_d)
        acc += tl.exp(m_s - m_max) * acc_s
    result = tl.where(l_sum > 0, acc / tl.maximum(l_sum, 1e-30), 0.0)  # context_len 0 -> 0
    tl.store(out_ptr + seq * stride_ob + head * stride_oh + offs_d * stride_od, result.to(out_ptr.dtype.element_ty))


@functools.lru_cache(maxsize=None)
def _num_sms(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def choose_num_splits(batch: int, num_kv_heads: int, max_blocks: int, num_sms: int = DEFAULT_NUM_SMS) -> int:
    """Splits per sequence, from shapes only, at most one per block: enough for ~2 programs per SM
    when the batch alone does not fill the GPU, ~4 when it does (one program per sequence and KV
    head loops over its blocks one at a time, too few loads in flight to use HBM's bandwidth).

    num_splits = clamp(ceil(k * num_sms / (batch * num_kv_heads)), 1, min(max_blocks, MAX_NUM_SPLITS)),
    k = 2 below num_sms programs, else 4. On 132 SMs with 8 KV heads: B=1 -> 33, B=16 -> 3, B=32 -> 3,
    B=64 -> 2, B >= 67 -> 1. Measured on an H200 (Qwen3-8B, 2K-token contexts, whole decode steps):
    k = 4 against k = 2 gave 1,319 against 1,042 tokens/s at B=32 and 3,002 against 2,555 at B=64;
    at B=1, k = 4 was no better (164 against 175 tokens/s). The cap uses the block-table width, not
    the lengths (those are tensor values), so short sequences in a wide table may get splits with no
    blocks; those cost one q load and a small store each.
    """
    programs = max(1, batch * num_kv_heads)
    per_sm = 2 if programs < num_sms else 4
    return max(1, min(-(-per_sm * num_sms // programs), max_blocks, MAX_NUM_SPLITS))


def paged_decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor, block_size: int,
                           scale: float, out: torch.Tensor | None = None,
                           num_splits: int | None = None) -> torch.Tensor:
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
        num_splits: split-K factor (int >= 1); None picks `choose_num_splits` with the SM count of
            q's CUDA device (DEFAULT_NUM_SMS off CUDA). More splits than a sequence has blocks
            leave some splits empty, which is allowed.

    Returns:
        out: [B, H, D] in q's dtype.
    """
    check_paged_decode_args(q, k_cache, v_cache, block_tables, context_lens, block_size, out, num_splits)
    batch, num_heads, head_dim = q.shape
    num_kv_heads = k_cache.shape[1]
    group = num_heads // num_kv_heads
    if out is None:
        out = torch.empty_like(q)
    if batch == 0:
        return out
    if num_splits is None:
        num_sms = _num_sms(q.device) if q.is_cuda else DEFAULT_NUM_SMS
        num_splits = choose_num_splits(batch, num_kv_heads, block_tables.shape[1], num_sms)
    if num_splits == 1:  # the kernel writes `out` itself; the workspace arguments are unused
        ws_acc = ws_m = ws_l = out
        ws_strides = (0,) * 5
    else:
        ws_acc = torch.empty(batch, num_heads, num_splits, head_dim, dtype=torch.float32, device=q.device)
        ws_m = torch.empty(batch, num_heads, num_splits, dtype=torch.float32, device=q.device)
        ws_l = torch.empty_like(ws_m)
        ws_strides = (*ws_acc.stride()[:3], *ws_m.stride()[:2])
    _paged_decode_kernel[(batch, num_kv_heads, num_splits)](
        q, k_cache, v_cache, out, ws_acc, ws_m, ws_l, block_tables, context_lens, scale,
        *q.stride(), *k_cache.stride(), *v_cache.stride(), *out.stride(), block_tables.stride(0), *ws_strides,
        GROUP=group, GROUP_PAD=max(16, triton.next_power_of_2(group)), HEAD_DIM=head_dim, BLOCK_SIZE=block_size,
        TILE=max(TILE_TOKENS, block_size), NUM_SPLITS=num_splits,
        HALF_DOTS=q.dtype == k_cache.dtype and q.dtype in (torch.bfloat16, torch.float16),
        INTERPRETED=INTERPRETED)
    if num_splits > 1:
        _combine_splits_kernel[(batch, num_heads)](
            out, ws_acc, ws_m, ws_l, *out.stride(), *ws_strides,
            HEAD_DIM=head_dim, NUM_SPLITS=num_splits, SPLITS_PAD=triton.next_power_of_2(num_splits))
    return out
