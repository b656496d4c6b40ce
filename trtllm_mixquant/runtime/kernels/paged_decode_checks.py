"""Shape and dtype checks shared by the paged decode kernel and its reference (no value reads)."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
INDEX_DTYPES = (torch.int32, torch.int64)
MAX_NUM_SPLITS = 1024  # each value compiles its own kernels; the automatic choice stays far below


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_paged_decode_args(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            block_tables: torch.Tensor, context_lens: torch.Tensor, block_size: int,
                            out: torch.Tensor | None = None, num_splits: int | None = None) -> None:
    """Raise ValueError unless the arguments of `paged_decode_attention` fit together.

    Reads only shapes, dtypes and devices, never values, so it is safe inside CUDA-graph capture.
    """
    if q.ndim != 3:
        raise ValueError(f"q must be [B, H, D], got shape {tuple(q.shape)}")
    if k_cache.ndim != 3:
        raise ValueError(f"k_cache must be [num_slots, Hkv, D], got shape {tuple(k_cache.shape)}")
    if v_cache.shape != k_cache.shape:
        raise ValueError(f"v_cache shape {tuple(v_cache.shape)} != k_cache shape {tuple(k_cache.shape)}")
    (batch, num_heads, head_dim), (num_slots, num_kv_heads, _) = q.shape, k_cache.shape
    if k_cache.shape[2] != head_dim:
        raise ValueError(f"head dim mismatch: q has D={head_dim}, k_cache/v_cache have D={k_cache.shape[2]}")
    if num_kv_heads == 0 or num_heads % num_kv_heads:
        raise ValueError(f"query heads H={num_heads} must be a multiple of KV heads Hkv={num_kv_heads}")
    if not (_is_pow2(head_dim) and head_dim >= 16):
        raise ValueError(f"head dim D={head_dim} must be a power of two >= 16")
    if not (_is_pow2(block_size) and block_size >= 16):
        raise ValueError(f"block_size={block_size} must be a power of two >= 16")
    if num_slots % block_size:
        raise ValueError(f"cache slots {num_slots} are not a whole number of blocks of {block_size}")
    if q.dtype not in FLOAT_DTYPES or k_cache.dtype not in FLOAT_DTYPES:
        raise ValueError(f"q and caches must be fp32/fp16/bf16, got q {q.dtype}, cache {k_cache.dtype}")
    if v_cache.dtype != k_cache.dtype:
        raise ValueError(f"k_cache dtype {k_cache.dtype} != v_cache dtype {v_cache.dtype}")
    if block_tables.ndim != 2 or block_tables.shape[0] != batch:
        raise ValueError(f"block_tables must be [B={batch}, max_blocks], got shape {tuple(block_tables.shape)}")
    if context_lens.shape != (batch,):
        raise ValueError(f"context_lens must be [B={batch}], got shape {tuple(context_lens.shape)}")
    if block_tables.dtype not in INDEX_DTYPES or context_lens.dtype not in INDEX_DTYPES:
        raise ValueError(f"block_tables and context_lens must be int32/int64, "
                         f"got {block_tables.dtype} and {context_lens.dtype}")
    if out is not None and (out.shape != q.shape or out.dtype != q.dtype):
        raise ValueError(f"out must be {tuple(q.shape)} {q.dtype}, got {tuple(out.shape)} {out.dtype}")
    if num_splits is not None and (isinstance(num_splits, bool) or not isinstance(num_splits, int)
                                   or not 1 <= num_splits <= MAX_NUM_SPLITS):
        raise ValueError(f"num_splits must be None or an int in [1, {MAX_NUM_SPLITS}], got {num_splits!r}")
    tensors = (q, k_cache, v_cache, block_tables, context_lens) + ((out,) if out is not None else ())
    if len({t.device for t in tensors}) != 1:
        raise ValueError(f"all tensors must be on one device, got {sorted({str(t.device) for t in tensors})}")
