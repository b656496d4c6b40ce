"""Attention over the paged KV cache, vectorised over segments (no Python loop over sequences).

| step | kernel |
|---|---|
| decode on CUDA (one query token per segment) | our Triton paged-decode kernel: reads the block tables itself, static launch shape (CUDA graphs) |
| one whole prompt (one segment, nothing cached) | causal SDPA, cuDNN first: on an H200 592 TFLOP/s at 8K tokens against 286 for the flash backend SDPA picks by default |
| anything else on CUDA in bf16/fp16 (chunked prefill, a turn over a cached prefix, mixed steps) | each segment's keys and values gathered from its blocks into one packed [sum(context_lens)] tensor, then variable-length flash attention with bottom-right causal alignment (the packing is computed once per step: `pack_kv`) |
| anything else (CPU, fp32) | keys and values gathered into a padded [S, max_context_len] tensor, masked SDPA |

In a step the engine marks `fp8_attention` (`EngineConfig.fp8_attention`: "all" prompt steps, or
"auto": those of at least `FP8_ATTENTION_MIN_PAIRS`), the prompt rows the quantized weights prefill
also attend in FP8 (`kernels.fp8_prefill_attention` on sm_90+, reading cached keys at their slots;
its PyTorch reference on a CPU); decode and the precise rows stay BF16, as does the KV cache.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from trtllm_mixquant.runtime.batch import PackedKV, StepBatch
from trtllm_mixquant.runtime.kernels.fp8_attention_reference import fp8_attention_reference

# `EngineConfig.fp8_attention="auto"`: FP8 attention for a step whose quantized segments have at least this
# many query-key pairs (query tokens x context length, summed): a 4K-token prompt, a 512-token turn over
# 32K cached. On an H200 (Qwen3-8B shapes, `bench prefill`) it made the FP8 prefill 1.06x faster at 8K
# tokens (67M pairs), 1.15x at 32K and 1.55x for 2K over 30K cached, but 3% slower at 2K (4M pairs) and
# 1.5-2x slower for turns of 128-512 tokens over 3K (its ~0.4 ms of launches a layer, which the graphed
# pieces of a short step cannot hide).
FP8_ATTENTION_MIN_PAIRS = 1 << 24

PREFILL_BACKENDS = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                    SDPBackend.MATH]  # in order of preference; SDPA skips those that can't take the inputs


def write_kv(k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             slot_mapping: torch.Tensor) -> None:
    """Store k, v [T, Hkv, D] into the caches [num_slots, Hkv, D] at `slot_mapping` [T] (on CUDA,
    `kernels.rope_store` stores them as it makes them)."""
    k_cache.index_copy_(0, slot_mapping, k.to(k_cache.dtype))
    v_cache.index_copy_(0, slot_mapping, v.to(v_cache.dtype))


def paged_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor,
                    v_cache: torch.Tensor, batch: StepBatch, block_size: int, scale: float) -> torch.Tensor:
    """Causal attention of this step's q [T, H, D] over each sequence's cached keys and values.

    k, v [T, Hkv, D] are this step's keys and values, already written to the caches.
    Returns [T, H, D].
    """
    if batch.max_query_len == 1 and q.is_cuda:  # decode: the Triton kernel reads the block tables itself
        from trtllm_mixquant.runtime.kernels.paged_decode import paged_decode_attention

        return paged_decode_attention(q, k_cache, v_cache, batch.block_tables, batch.context_lens, block_size, scale)
    if batch.fp8_attention and batch.num_quantized > 0 and batch.max_query_len > 1:
        return fp8_quantized_rows_attention(q, k, v, k_cache, v_cache, batch, block_size, scale)
    return bf16_attention(q, k, v, k_cache, v_cache, batch, block_size, scale)


def bf16_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor,
                   v_cache: torch.Tensor, batch: StepBatch, block_size: int, scale: float) -> torch.Tensor:
    if is_whole_prompt(batch):
        return causal_prompt_attention(q, k, v, scale)
    if batch.packed_kv is not None:
        return varlen_attention(q, k_cache, v_cache, batch, scale)
    return masked_attention(q, k_cache, v_cache, batch, block_size, scale)


def fp8_quantized_rows_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor,
                                 v_cache: torch.Tensor, batch: StepBatch, block_size: int,
                                 scale: float) -> torch.Tensor:
    """The quantized rows (the first `num_quantized_segments` segments) in FP8; any precise rows of a
    mixed step in BF16 (then computed for the whole step, and the quantized rows replaced)."""
    n = batch.num_quantized_segments
    rows = batch.num_quantized
    cu_q = batch.query_start[:n + 1].int()
    if is_whole_prompt(batch):
        keys, values, cu_k, kv_rows = k, v, batch.query_start.int(), None
    else:
        kv_rows, cu_k = ((batch.packed_kv.slots, batch.packed_kv.cu_seqlens_k) if batch.packed_kv is not None
                         else packed_kv_slots(batch, block_size))
        keys, values, cu_k = k_cache, v_cache, cu_k.int()
    if q.is_cuda:
        from trtllm_mixquant.runtime.kernels.fp8_prefill_attention import fp8_prefill_attention

        # the cached keys are read at their slots (no gathered copy)
        quantized = fp8_prefill_attention(q[:rows], keys, values, cu_q, cu_k[:n + 1], batch.max_query_len,
                                          batch.max_context_len, scale, kv_rows)
    else:  # the same numerics (scales over the quantized segments' tokens) in PyTorch
        end = int(cu_k[n])
        keys, values = ((k_cache[kv_rows[:end]].to(q.dtype), v_cache[kv_rows[:end]].to(q.dtype))
                        if kv_rows is not None else (keys[:end], values[:end]))
        quantized = fp8_attention_reference(q[:rows], keys, values, cu_q, cu_k[:n + 1], scale)
    if rows == q.shape[0]:
        return quantized
    out = bf16_attention(q, k, v, k_cache, v_cache, batch, block_size, scale)
    out[:rows] = quantized
    return out


def check_fp8_attention(head_dim: int, device: torch.device) -> None:
    """Refuse FP8 attention where its CUDA kernel cannot run (TMA: sm_90+; head_dim 64 or 128); on a
    CPU its PyTorch reference runs."""
    if device.type != "cuda":
        return
    capability = torch.cuda.get_device_capability(device)
    if capability < (9, 0) or head_dim not in (64, 128):
        raise ValueError(f"--fp8-attention needs an sm_90+ GPU (Hopper or newer) and head_dim 64 or 128; this is "
                         f"sm_{capability[0]}{capability[1]} with head_dim {head_dim}: run with --fp8-attention off")


def is_whole_prompt(batch: StepBatch) -> bool:
    """One segment and nothing cached before it."""
    return batch.block_tables.shape[0] == 1 and batch.max_query_len == batch.max_context_len


def causal_prompt_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """One whole prompt: q [T, H, D], k, v [T, Hkv, D] -> [T, H, D]."""
    # 4-D [1, H, T, D] with K/V heads repeated: the shape the flash and cuDNN kernels take (a 3-D or
    # grouped-query call falls back to the math kernel, which materialises [H, T, T]).
    group = q.shape[1] // k.shape[1]
    k, v = (t.repeat_interleave(group, dim=1) for t in (k, v))
    with sdpa_kernel(PREFILL_BACKENDS, set_priority=True):
        out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                             v.transpose(0, 1)[None], is_causal=True, scale=scale)
    return out[0].transpose(0, 1)


def pack_kv(batch: StepBatch, block_size: int, dtype: torch.dtype) -> StepBatch:
    """`batch` with `packed_kv` set when its attention runs on packed segments (CUDA, bf16/fp16, a step
    with prompt tokens that is not one whole prompt); called once per step, not once per layer."""
    device = batch.context_lens.device
    if (device.type != "cuda" or dtype not in (torch.bfloat16, torch.float16) or batch.max_query_len == 1
            or is_whole_prompt(batch)):
        return batch
    slots, kv_start = packed_kv_slots(batch, block_size)
    return dataclasses.replace(batch, packed_kv=PackedKV(slots, kv_start.int(), batch.query_start.int()))


def packed_kv_slots(batch: StepBatch, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cache slots of every segment's keys, segment after segment: slots [sum(context_lens)] and the
    segments' starts in it, kv_start [S + 1]."""
    device = batch.context_lens.device
    total = batch.num_kv_tokens if batch.num_kv_tokens is not None else int(batch.context_lens.sum())
    kv_start = F.pad(batch.context_lens.cumsum(0), (1, 0))  # [S + 1]
    segment = torch.repeat_interleave(torch.arange(len(batch.context_lens), device=device), batch.context_lens,
                                      output_size=total)  # [Tk]
    pos = torch.arange(total, device=device) - kv_start[segment]  # [Tk] position within its sequence
    return batch.block_tables[segment, pos // block_size] * block_size + pos % block_size, kv_start


def varlen_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, batch: StepBatch,
                     scale: float) -> torch.Tensor:
    """Flash attention over packed segments (CUDA, bf16/fp16, `batch.packed_kv` set): q [T, H, D] -> [T, H, D].

    Each segment's queries are the last q_len of its context_len keys; flash aligns the causal mask
    bottom-right when the two lengths differ, which is exactly that. Grouped-query heads are native.
    """
    packed = batch.packed_kv
    keys = k_cache.index_select(0, packed.slots).to(q.dtype)  # [Tk, Hkv, D]
    values = v_cache.index_select(0, packed.slots).to(q.dtype)
    # aten's op under torch.nn.attention.varlen.varlen_attn, which older torch releases lack.
    return torch.ops.aten._flash_attention_forward(
        q, keys, values, packed.cu_seqlens_q, packed.cu_seqlens_k, batch.max_query_len, batch.max_context_len,
        0.0, True, False, scale=scale)[0]


def masked_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, batch: StepBatch,
                     block_size: int, scale: float) -> torch.Tensor:
    """Any device and dtype: padded [S, max_context_len] keys and an explicit mask; q [T, H, D] -> [T, H, D]."""
    device = q.device
    kv_pos = torch.arange(batch.max_context_len, device=device)  # [L]
    slots = batch.block_tables[:, kv_pos // block_size] * block_size + kv_pos % block_size  # [S, L]
    keys, values = k_cache[slots].to(q.dtype), v_cache[slots].to(q.dtype)  # [S, L, Hkv, D]

    q_len = batch.query_start[1:] - batch.query_start[:-1]  # [S]
    j = torch.arange(batch.max_query_len, device=device)  # [Q]
    q_valid = j < q_len[:, None]  # [S, Q]
    rows = torch.where(q_valid, batch.query_start[:-1, None] + j, 0)
    q_pos = (batch.context_lens - q_len)[:, None] + j  # [S, Q] absolute positions
    mask = (kv_pos <= q_pos[:, :, None]) & (kv_pos < batch.context_lens[:, None, None])  # [S, Q, L]
    out = F.scaled_dot_product_attention(
        q[rows].transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2),
        attn_mask=mask[:, None], scale=scale, enable_gqa=True)  # [S, H, Q, D]
    return out.transpose(1, 2)[q_valid]
