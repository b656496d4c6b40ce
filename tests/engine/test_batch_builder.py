"""`build_step`: the host-side batch of a step, against the per-token definition of its fields."""

from __future__ import annotations

import random

import torch

from trtllm_mixquant.engine.batch_builder import build_step, slots_of
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.engine.sequence import Sequence


def test_slots_of_equals_the_per_token_rule():
    rng = random.Random(0)
    for _ in range(500):
        bs = rng.choice([4, 16, 32])
        table = rng.sample(range(100), rng.randint(1, 8))
        end = rng.randint(0, len(table) * bs)
        start = rng.randint(0, end)
        assert slots_of(table, start, end, bs) == [table[p // bs] * bs + p % bs for p in range(start, end)]


def test_step_of_a_mixquant_prefill_and_two_decodes():
    params = SamplingParams(max_tokens=4)
    prompt = Sequence(list(range(100, 110)), params, quantized_until=9)  # last prompt token precise
    a, b = (Sequence(list(range(20)), params, quantized_until=0) for _ in range(2))
    prompt.block_table, a.block_table, b.block_table = [7, 3, 5], [1, 2, 4, 6, 8], [0, 9, 10, 11, 12]
    prompt.num_computed, a.num_computed, b.num_computed = 2, 19, 19  # two tokens of the prompt cached
    batch, rows = build_step([(a, 1), (prompt, 8), (b, 1)], 4)
    # the quantized segment (prompt positions 2-8) first, then the precise rows in chunk order
    assert batch.positions.tolist() == [2, 3, 4, 5, 6, 7, 8, 19, 9, 19]
    assert batch.input_ids.tolist() == [102, 103, 104, 105, 106, 107, 108, 19, 109, 19]
    want_slots = [prompt.block_table[p // 4] * 4 + p % 4 for p in range(2, 9)] + [8 * 4 + 3, 5 * 4 + 1, 12 * 4 + 3]
    assert batch.slot_mapping.tolist() == want_slots
    assert batch.num_quantized == 7 and batch.num_quantized_segments == 1
    assert batch.query_start.tolist() == [0, 7, 8, 9, 10]
    assert batch.context_lens.tolist() == [9, 20, 10, 20]
    assert batch.block_tables.tolist() == [[7, 3, 5, 0, 0], [1, 2, 4, 6, 8], [7, 3, 5, 0, 0], [0, 9, 10, 11, 12]]
    assert batch.logits_indices.tolist() == [7, 8, 9] and rows.next_token == [a, prompt, b]
    assert (batch.max_query_len, batch.max_context_len, batch.num_kv_tokens) == (7, 20, 59)
    assert all(t.dtype == torch.long for t in (batch.input_ids, batch.positions, batch.slot_mapping))


def test_fp8_attention_auto_takes_steps_with_enough_query_key_pairs(monkeypatch):
    """auto: FP8 attention where the quantized segments' query tokens x context length reach the
    threshold (here lowered to 64); all: every step with quantized rows; off: none. Decode-only steps
    have no quantized rows and never attend in FP8."""
    from trtllm_mixquant.engine import batch_builder

    monkeypatch.setattr(batch_builder, "FP8_ATTENTION_MIN_PAIRS", 64)
    params = SamplingParams(max_tokens=4)

    def prompt(length, cached):
        seq = Sequence(list(range(length)), params, quantized_until=length)
        seq.block_table, seq.num_computed = list(range(length // 4 + 1)), cached
        return seq

    def fp8(mode, length, cached):
        return build_step([(prompt(length, cached), length - cached)], 4, mode)[0].fp8_attention

    assert not fp8("auto", 7, 0) and fp8("auto", 8, 0)  # 7 x 7 < 64 <= 8 x 8 pairs
    assert fp8("auto", 32, 30)  # a turn of 2 tokens over 30 cached: 2 x 32 pairs
    assert fp8("all", 2, 0) and not fp8("off", 32, 0)
    decode = prompt(40, 39)
    decode.quantized_until = 0
    assert not build_step([(decode, 1)], 4, "all")[0].fp8_attention
