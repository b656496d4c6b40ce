"""Pure-PyTorch reference of the paged decode attention kernel (vectorised, fp32 softmax)."""

from __future__ import annotations

import torch

from trtllm_mixquant.runtime.kernels.paged_decode_checks import check_paged_decode_args


def paged_decode_attention_reference(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                                     block_tables: torch.Tensor, context_lens: torch.Tensor, block_size: int,
                                     scale: float, out: torch.Tensor | None = None,
                                     num_splits: int | None = None) -> torch.Tensor:
    """Same contract as `paged_decode.paged_decode_attention`; computes in fp32.

    Gathers every sequence's slots for positions [0, max_blocks * block_size) (no host sync),
    masks positions >= context_lens (whose block-table entries may be garbage) and returns
    [B, H, D] in q's dtype. A sequence with context_len 0 gets zeros. `num_splits` is validated
    like the kernel's but otherwise unused: split-K regroups the sum of the exact softmax this
    computes in one piece, so every split count has the same answer up to fp32 rounding.
    """
    check_paged_decode_args(q, k_cache, v_cache, block_tables, context_lens, block_size, out, num_splits)
    batch, num_heads, head_dim = q.shape
    num_kv_heads = k_cache.shape[1]
    pos = torch.arange(block_tables.shape[1] * block_size, device=q.device)  # [L]
    valid = pos < context_lens[:, None]  # [B, L]
    blocks = torch.where(valid, block_tables[:, pos // block_size].long(), 0)  # [B, L]
    slots = blocks * block_size + pos % block_size  # [B, L]
    keys = k_cache[slots].float()  # [B, L, Hkv, D]
    values = torch.where(valid[:, :, None, None], v_cache[slots].float(), 0.0)  # [B, L, Hkv, D]
    q4 = q.float().view(batch, num_kv_heads, num_heads // num_kv_heads, head_dim)  # [B, Hkv, G, D]
    scores = torch.einsum("bkgd,blkd->bkgl", q4, keys) * scale  # [B, Hkv, G, L]
    scores = scores.masked_fill(~valid[:, None, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1).masked_fill(~valid[:, None, None], 0.0)
    result = torch.einsum("bkgl,blkd->bkgd", probs, values).reshape(batch, num_heads, head_dim)
    if out is None:
        return result.to(q.dtype)
    return out.copy_(result)
