"""Per-head dynamic 8-bit quantization of a step's Q, K and V for `fp8_prefill_attention`, with the
numerics of `fp8_attention_reference`: Q and K rotated (x R, `rotation`: products of +-1 are exact,
the sums fp32) and rounded to int8, V to FP8 E4M3; for each head scale = max(amax / limit, 1e-12)
over the step's tokens (limit 127 for int8, 448 for E4M3) and x / scale clamped to +-limit and
rounded to nearest even.

Two launches for the three tensors: per-head amaxes (atomic max of each tile's), then the quantized
copies. K and V can be read straight from the KV cache at given rows (a turn over a cached prefix:
no gathered BF16 copy). V is written transposed, [Hkv, D, columns], the layout of the P.V operand of
Hopper's FP8 tensor-core products, each segment's keys from a column that is a multiple of 16 (TMA
reads tiles from 16-byte-aligned columns): segment s at cu_vt[s]. On an H100 (Qwen3-8B heads) a call
takes 0.45 ms at 8K tokens, 0.92 ms at 32K and 0.62 ms for 2K queries over 30K keys read from the
cache, rotation and launches included (its two kernels: 0.20 ms a layer in an 8K prefill's
profile); on eager torch ops this prologue took 0.75 ms at 8K on an H200, as much as the attention
it feeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from trtllm_mixquant.formats.fp8 import E4M3_MAX
from trtllm_mixquant.runtime.kernels import INTERPRETED
from trtllm_mixquant.runtime.kernels.common import TORCH_TO_TRITON, half_dot
from trtllm_mixquant.runtime.kernels.fp8_attention_reference import INT8_MAX, rotation

BLOCK_T = 64  # tokens per tile
SPAN = 512  # tokens per program (a loop over tiles), so that few programs have nothing to do
VT_ALIGN = 16  # V^T columns at which each segment starts (bytes of E4M3)


@dataclass
class QuantizedHeads:
    q8: torch.Tensor  # [Tq, H, D] int8
    k8: torch.Tensor  # [Tk, Hkv, D] int8
    vt8: torch.Tensor  # [Hkv, D, columns] float8_e4m3fn, segment s's keys from column cu_vt[s]
    cu_vt: torch.Tensor  # [S + 1] int32
    q_scale: torch.Tensor  # [H] fp32
    k_scale: torch.Tensor  # [Hkv] fp32
    v_scale: torch.Tensor  # [Hkv] fp32


@triton.jit
def _span(cu_q_ptr, cu_k_ptr, HEADS: tl.constexpr, KV_HEADS: tl.constexpr, SPAN: tl.constexpr):
    """This program's work: one head of Q (role 0), K (1) or V (2) over up to SPAN tokens of one segment,
    [start, end) of the packed tokens (none when start == end), with the segment's first token t0."""
    block, head, seg_role = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    seg, role = seg_role // 3, seg_role % 3
    if role == 0:
        t0, t1 = tl.load(cu_q_ptr + seg), tl.load(cu_q_ptr + seg + 1)
    else:
        t0, t1 = tl.load(cu_k_ptr + seg), tl.load(cu_k_ptr + seg + 1)
    start = t0 + block * SPAN
    end = tl.where(head < tl.where(role == 0, HEADS, KV_HEADS), tl.minimum(t1, start + SPAN), start)
    return role, seg, head, t0, start, tl.maximum(end, start)


@triton.jit
def _load_tile(role, head, offs_t, mask, q_ptr, k_ptr, v_ptr, kv_rows_ptr, stride_qt, stride_qh, stride_kt,
               stride_kh, stride_vt, stride_vh, HEAD_DIM: tl.constexpr, HAS_KV_ROWS: tl.constexpr):
    """One head's [BLOCK, HEAD_DIM] of Q, K or V at packed tokens offs_t [BLOCK], in fp32."""
    if role == 0:
        ptr, st, sh = q_ptr, stride_qt, stride_qh
    elif role == 1:
        ptr, st, sh = k_ptr, stride_kt, stride_kh
    else:
        ptr, st, sh = v_ptr, stride_vt, stride_vh
    rows = offs_t.to(tl.int64)
    if HAS_KV_ROWS:
        if role > 0:
            rows = tl.load(kv_rows_ptr + offs_t, mask=mask, other=0).to(tl.int64)
    offs_d = tl.arange(0, HEAD_DIM)
    x = tl.load(ptr + rows[:, None] * st + head * sh + offs_d[None, :], mask=mask[:, None], other=0.0)
    return x.to(tl.float32)


@triton.jit
def _amax_offset(role, HEADS: tl.constexpr, KV_HEADS: tl.constexpr):
    """Where a role's heads start in the amax buffer: Q's heads, then K's, then V's."""
    return tl.where(role == 0, 0, HEADS + (role - 1) * KV_HEADS)


@triton.jit
def _rotated(x, rot, role, DTYPE: tl.constexpr, INTERPRETED: tl.constexpr):
    """Q's and K's tiles (roles 0, 1) times the rotation rot [D, D] (+-1 in DTYPE, the inputs' dtype:
    exact products, fp32 sums); V's as they are."""
    if role < 2:
        if DTYPE == tl.float32 and not INTERPRETED:
            x = tl.dot(x, rot, input_precision="ieee")
        else:  # x holds DTYPE values: the cast back is exact
            x = half_dot(x.to(DTYPE), rot, INTERPRETED)
    return x


@triton.jit
def _amax_kernel(q_ptr, k_ptr, v_ptr, kv_rows_ptr, cu_q_ptr, cu_k_ptr, rot_ptr, amax_ptr, stride_qt, stride_qh,
                 stride_kt, stride_kh, stride_vt, stride_vh, HEADS: tl.constexpr, KV_HEADS: tl.constexpr,
                 HEAD_DIM: tl.constexpr, HAS_KV_ROWS: tl.constexpr, BLOCK: tl.constexpr, SPAN: tl.constexpr,
                 DTYPE: tl.constexpr, INTERPRETED: tl.constexpr):
    role, _, head, _, start, end = _span(cu_q_ptr, cu_k_ptr, HEADS, KV_HEADS, SPAN)
    if start < end:
        offs_d = tl.arange(0, HEAD_DIM)
        rot = tl.load(rot_ptr + offs_d[:, None] * HEAD_DIM + offs_d[None, :])
        amax = tl.zeros([BLOCK, HEAD_DIM], tl.float32)
        for t in range(start, end, BLOCK):
            offs_t = t + tl.arange(0, BLOCK)
            x = _load_tile(role, head, offs_t, offs_t < end, q_ptr, k_ptr, v_ptr, kv_rows_ptr, stride_qt, stride_qh,
                           stride_kt, stride_kh, stride_vt, stride_vh, HEAD_DIM, HAS_KV_ROWS)
            amax = tl.maximum(amax, tl.abs(_rotated(x, rot, role, DTYPE, INTERPRETED)))
        tl.atomic_max(amax_ptr + _amax_offset(role, HEADS, KV_HEADS) + head, tl.max(amax))


@triton.jit
def _e4m3_rne(y):
    """fp32 y in [-448, 448] rounded to the nearest E4M3 value (ties to even), in fp32: y / step rounded
    by `_round_even`, step being 2^(exponent - 3) (the subnormals share the smallest normal binade's
    2^-9). The interpreter's own fp32 -> E4M3 cast rounds otherwise; that of exact values is exact."""
    exponent = tl.maximum(((y.to(tl.uint32, bitcast=True) >> 23) & 0xFF).to(tl.int32) - 127, -6)
    step = ((exponent + 124).to(tl.uint32) << 23).to(tl.float32, bitcast=True)
    return _round_even(y / step) * step


@triton.jit
def _round_even(y):
    """fp32 y with |y| < 2^22 rounded to the nearest integer, ties to even (torch.round): adding
    1.5 * 2^23 leaves no fraction bits, and fp32 addition rounds to nearest even."""
    return y + 12582912.0 - 12582912.0


@triton.jit
def _quantize_kernel(q_ptr, k_ptr, v_ptr, kv_rows_ptr, cu_q_ptr, cu_k_ptr, rot_ptr, amax_ptr, q8_ptr, k8_ptr,
                     vt8_ptr, cu_vt_ptr, stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_vt8h,
                     stride_vt8d, HEADS: tl.constexpr, KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
                     HAS_KV_ROWS: tl.constexpr, BLOCK: tl.constexpr, SPAN: tl.constexpr, DTYPE: tl.constexpr,
                     INTERPRETED: tl.constexpr):
    role, seg, head, t0, start, end = _span(cu_q_ptr, cu_k_ptr, HEADS, KV_HEADS, SPAN)
    if start < end:
        limit = tl.where(role < 2, 127.0, 448.0)  # INT8_MAX for Q R and K R, E4M3_MAX for V
        scale = tl.maximum(tl.load(amax_ptr + _amax_offset(role, HEADS, KV_HEADS) + head) / limit, 1e-12)
        d = tl.arange(0, HEAD_DIM)
        rot = tl.load(rot_ptr + d[:, None] * HEAD_DIM + d[None, :])
        offs_d = d[None, :]
        for t in range(start, end, BLOCK):
            offs_t = t + tl.arange(0, BLOCK)
            mask = offs_t < end
            x = _load_tile(role, head, offs_t, mask, q_ptr, k_ptr, v_ptr, kv_rows_ptr, stride_qt, stride_qh,
                           stride_kt, stride_kh, stride_vt, stride_vh, HEAD_DIM, HAS_KV_ROWS)
            y = tl.minimum(tl.maximum(_rotated(x, rot, role, DTYPE, INTERPRETED) / scale, -limit), limit)
            rows = offs_t[:, None].to(tl.int64)
            if role == 0:
                tl.store(q8_ptr + rows * (HEADS * HEAD_DIM) + head * HEAD_DIM + offs_d, _round_even(y).to(tl.int8),
                         mask=mask[:, None])
            elif role == 1:
                tl.store(k8_ptr + rows * (KV_HEADS * HEAD_DIM) + head * HEAD_DIM + offs_d,
                         _round_even(y).to(tl.int8), mask=mask[:, None])
            else:
                if INTERPRETED:
                    y = _e4m3_rne(y)
                column = tl.load(cu_vt_ptr + seg) + (offs_t - t0)[:, None]
                tl.store(vt8_ptr + head * stride_vt8h + offs_d * stride_vt8d + column, y.to(tl.float8e4nv),
                         mask=mask[:, None])


def quantize_heads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor,
                   max_q: int, max_k: int, kv_rows: torch.Tensor | None = None) -> QuantizedHeads:
    """q [Tq, H, D]; k, v [Tk, Hkv, D] (q's dtype), or with kv_rows the caches [slots, Hkv, D] read at
    kv_rows [Tk] (packed keys); cu_q, cu_k [S + 1] int32 segment starts; max_q, max_k: the longest
    segment's queries and keys. q8, k8 hold Q R and K R; scales cover the segments' tokens; V^T's
    padding columns are zero."""
    heads, kv_heads, head_dim = q.shape[1], k.shape[1], q.shape[2]
    segments = cu_q.numel() - 1
    n_q = q.shape[0]
    n_k = kv_rows.numel() if kv_rows is not None else k.shape[0]
    cu_vt = F.pad(((cu_k[1:] - cu_k[:-1] + VT_ALIGN - 1) // VT_ALIGN * VT_ALIGN).cumsum(0), (1, 0)).int()
    columns = triton.cdiv(n_k + (VT_ALIGN - 1) * segments, VT_ALIGN) * VT_ALIGN  # >= cu_vt[-1]
    amax = torch.zeros(heads + 2 * kv_heads, dtype=torch.float32, device=q.device)
    q8 = torch.empty(n_q, heads, head_dim, dtype=torch.int8, device=q.device)
    k8 = torch.empty(n_k, kv_heads, head_dim, dtype=torch.int8, device=q.device)
    vt8 = torch.zeros(kv_heads, head_dim, columns, dtype=torch.float8_e4m3fn, device=q.device)
    grid = (triton.cdiv(max(max_q, max_k), SPAN), max(heads, kv_heads), 3 * segments)
    strides = (q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1))
    common = dict(HEADS=heads, KV_HEADS=kv_heads, HEAD_DIM=head_dim, HAS_KV_ROWS=kv_rows is not None, BLOCK=BLOCK_T,
                  SPAN=SPAN, DTYPE=TORCH_TO_TRITON[q.dtype], INTERPRETED=INTERPRETED)
    rows = kv_rows if kv_rows is not None else cu_k
    rot = rotation(head_dim, q.device, q.dtype)
    _amax_kernel[grid](q, k, v, rows, cu_q, cu_k, rot, amax, *strides, **common)
    _quantize_kernel[grid](q, k, v, rows, cu_q, cu_k, rot, amax, q8, k8, vt8, cu_vt, *strides, vt8.stride(0),
                           vt8.stride(1), **common)
    qk_scales = (amax[:heads + kv_heads] / INT8_MAX).clamp_min(1e-12)
    return QuantizedHeads(q8, k8, vt8, cu_vt, qk_scales[:heads], qk_scales[heads:],
                          (amax[heads + kv_heads:] / E4M3_MAX).clamp_min(1e-12))
