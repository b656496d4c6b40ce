"""Turn scheduled chunks into a `StepBatch`, with quantized-phase segments first."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trtllm_mixquant.engine.sequence import Sequence
from trtllm_mixquant.runtime.attention import FP8_ATTENTION_MIN_PAIRS
from trtllm_mixquant.runtime.batch import StepBatch


@dataclass
class Segment:
    seq: Sequence
    start: int  # first position
    end: int  # one past the last position


@dataclass
class LogitRows:
    """Which sequences the step's logits rows belong to."""

    next_token: list[Sequence]  # row i -> sequence whose next token it predicts (prompt done or decoding)
    scored: list[tuple[Sequence, int]]  # score() and prompt logprobs: (sequence, position) of the following rows


def split_chunks(chunks: list[tuple[Sequence, int]]) -> list[Segment]:
    """Cut each chunk at its sequence's `quantized_until`; quantized segments come first."""
    quantized, precise = [], []
    for seq, n in chunks:
        start, end, cut = seq.num_computed, seq.num_computed + n, seq.quantized_until
        if start < cut:
            quantized.append(Segment(seq, start, min(end, cut)))
        if end > cut:
            precise.append(Segment(seq, max(start, cut), end))
    return quantized + precise


def slots_of(block_table: list[int], start: int, end: int, block_size: int) -> list[int]:
    """KV-cache slots of positions [start, end) of a sequence: one range per block, none per token."""
    slots = []
    for b in range(start // block_size, (end - 1) // block_size + 1 if end > start else 0):
        base = block_table[b] * block_size - b * block_size
        slots.extend(range(base + max(start, b * block_size), base + min(end, (b + 1) * block_size)))
    return slots


def build_step(chunks: list[tuple[Sequence, int]], block_size: int,
               fp8_attention: str = "off") -> tuple[StepBatch, LogitRows]:
    """Host-side batch preparation: Python lists per segment (a block's slots as one range), then one
    tensor per field (32 decode rows of 2K context: 0.6 ms on our 2-core machine, against 2.7 ms with
    tensor ops per segment). fp8_attention: `EngineConfig.fp8_attention`."""
    segments = split_chunks(chunks)
    ids, positions, slots, query_start, context_lens, tables = [], [], [], [0], [], []
    next_rows, score_rows = [], []
    num_quantized = quantized_segments = quantized_pairs = 0
    for seg in segments:
        row0, n = query_start[-1], seg.end - seg.start
        ids += seg.seq.token_ids[seg.start:seg.end]
        positions += range(seg.start, seg.end)
        slots += slots_of(seg.seq.block_table, seg.start, seg.end, block_size)
        query_start.append(row0 + n)
        context_lens.append(seg.end)
        tables.append(seg.seq.block_table)
        if seg.start < seg.seq.quantized_until:
            num_quantized += n
            quantized_segments += 1
            quantized_pairs += n * seg.end
        if seg.seq.logits_positions is not None:
            lo, hi = max(seg.seq.logits_positions[0], seg.start), min(seg.seq.logits_positions[1], seg.end)
            score_rows += [(row0 + p - seg.start, seg.seq, p) for p in range(lo, hi)]
        if seg.end == len(seg.seq) and not seg.seq.stops_after_prefill:
            next_rows.append((row0 + n - 1, seg.seq))
    width = max(len(t) for t in tables)
    batch = StepBatch(
        input_ids=torch.tensor(ids, dtype=torch.long),
        positions=torch.tensor(positions, dtype=torch.long),
        slot_mapping=torch.tensor(slots, dtype=torch.long),
        num_quantized=num_quantized,
        query_start=torch.tensor(query_start, dtype=torch.long),
        context_lens=torch.tensor(context_lens, dtype=torch.long),
        block_tables=torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.long),
        max_query_len=max(s.end - s.start for s in segments),
        max_context_len=max(context_lens),
        logits_indices=torch.tensor([r for r, _ in next_rows] + [r for r, _, _ in score_rows], dtype=torch.long),
        num_kv_tokens=sum(context_lens),
        num_quantized_segments=quantized_segments,
        fp8_attention=quantized_pairs > 0 and (fp8_attention == "all" or (
            fp8_attention == "auto" and quantized_pairs >= FP8_ATTENTION_MIN_PAIRS)),
    )
    return batch, LogitRows([s for _, s in next_rows], [(s, p) for _, s, p in score_rows])
