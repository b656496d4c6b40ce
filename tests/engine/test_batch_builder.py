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
