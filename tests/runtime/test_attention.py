"""The prefill attention paths over a paged cache, on a step that mixes every kind of segment."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

from trtllm_mixquant.runtime.attention import masked_attention, pack_kv, packed_kv_slots, varlen_attention
from trtllm_mixquant.runtime.batch import StepBatch

BLOCK = 8
# (sequence, context_len, new tokens): a whole prompt, a turn over a cached prefix, one token, and one
# sequence cut into a quantized and a precise segment (both in the same step, as mixquant does).
SEGMENTS = [(0, 40, 40), (1, 70, 13), (2, 25, 1), (3, 30, 10), (3, 33, 3)]


def mixed_step(device="cpu", dtype=torch.float32, heads=4, kv_heads=2, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(64, generator=g)  # blocks handed out in no particular order
    tables, used = {}, 0
    for seq, ctx, _ in SEGMENTS:
        need = -(-ctx // BLOCK)
        if seq not in tables or len(tables[seq]) < need:
            tables[seq] = order[used:used + need].tolist()
            used += need
    rows = [tables[seq] for seq, _, _ in SEGMENTS]
    width = max(map(len, rows))
    table = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    q_lens = [n for _, _, n in SEGMENTS]
    pos = torch.cat([torch.arange(ctx - n, ctx) for _, ctx, n in SEGMENTS])
    seg = torch.repeat_interleave(torch.arange(len(SEGMENTS)), torch.tensor(q_lens))
    ctx = torch.tensor([c for _, c, _ in SEGMENTS])
    batch = StepBatch(torch.zeros(len(pos), dtype=torch.long), pos, table[seg, pos // BLOCK] * BLOCK + pos % BLOCK,
                      0, F.pad(torch.tensor(q_lens).cumsum(0), (1, 0)), ctx, table, max(q_lens), int(ctx.max()),
                      torch.arange(len(pos)), int(ctx.sum())).to(device)
    q = torch.randn(len(pos), heads, dim, generator=g).to(device, dtype)
    k_cache, v_cache = (torch.randn(64 * BLOCK, kv_heads, dim, generator=g).to(device, dtype) for _ in range(2))
    return q, k_cache, v_cache, batch


def test_packed_kv_slots_follow_each_segments_block_table():
    _, _, _, batch = mixed_step()
    slots, kv_start = packed_kv_slots(batch, BLOCK)
    expected = [batch.block_tables[s, p // BLOCK] * BLOCK + p % BLOCK
                for s, (_, ctx, _) in enumerate(SEGMENTS) for p in range(ctx)]
    assert slots.tolist() == [int(x) for x in expected]
    assert kv_start.tolist() == [0, 40, 110, 135, 165, 198]


def test_packed_segments_with_bottom_right_causal_equal_masked_attention():
    """What the flash kernel computes, spelled out per segment on CPU: every segment's queries are the
    last ones of its packed keys. fp32 on both sides; only summation order differs."""
    q, k_cache, v_cache, batch = mixed_step()
    slots, kv_start = packed_kv_slots(batch, BLOCK)
    keys, values = k_cache[slots], v_cache[slots]
    out = []
    for s in range(len(SEGMENTS)):
        qs = q[batch.query_start[s]:batch.query_start[s + 1]].transpose(0, 1)[None]
        ks, vs = (t[kv_start[s]:kv_start[s + 1]].transpose(0, 1)[None].repeat_interleave(2, 1) for t in (keys, values))
        out.append(F.scaled_dot_product_attention(qs, ks, vs, attn_mask=causal_lower_right(qs.shape[2], ks.shape[2]),
                                                  scale=0.25)[0].transpose(0, 1))
    reference = masked_attention(q, k_cache, v_cache, batch, BLOCK, 0.25)
    assert (torch.cat(out) - reference).abs().max() < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="flash attention needs a CUDA GPU")
def test_varlen_flash_matches_masked_attention_on_gpu():
    """bf16 flash against the masked path in fp32 on the same bf16 values: the flash kernel accumulates
    in fp32 and rounds its output to bf16, so 4 bf16 ulps of the output scale is ample; a wrong causal
    alignment or segment offset gives errors of order 1."""
    q, k_cache, v_cache, batch = mixed_step("cuda", torch.bfloat16, heads=8, kv_heads=2, dim=128)
    out = varlen_attention(q, k_cache, v_cache, pack_kv(batch, BLOCK, q.dtype), 128 ** -0.5)
    reference = masked_attention(q.float(), k_cache.float(), v_cache.float(), batch, BLOCK, 128 ** -0.5)
    assert (out.float() - reference).abs().max() < 4 * 2 ** -8 * reference.abs().max()
