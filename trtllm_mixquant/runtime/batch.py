"""`StepBatch`: everything one forward step needs, passed explicitly (no global forward context).

The step's tokens are laid out in segments: a segment is a run of consecutive tokens of one
sequence. Segments whose tokens are prefilled with the quantized (context-engine) weights come
first, so the first `num_quantized` token rows go through the quantized GEMMs and the rest through
the BF16 ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PackedKV:
    """Every segment's keys, packed one segment after another, for variable-length attention.
    Computed once per step on the device (`attention.pack_kv`), read by every layer."""

    slots: torch.Tensor  # [sum(context_lens)] int64, cache slot of each packed key
    cu_seqlens_k: torch.Tensor  # [S + 1] int32, where each segment's keys start in `slots`
    cu_seqlens_q: torch.Tensor  # [S + 1] int32, query_start


@dataclass
class StepBatch:
    input_ids: torch.Tensor  # [T] int64
    positions: torch.Tensor  # [T] int64, position of each token in its sequence
    slot_mapping: torch.Tensor  # [T] int64, KV-cache slot (block * block_size + offset) each token writes
    num_quantized: int  # tokens [0, num_quantized) use the quantized weights
    query_start: torch.Tensor  # [S + 1] int64, segment s owns token rows query_start[s]:query_start[s+1]
    context_lens: torch.Tensor  # [S] int64, tokens of KV the segment's sequence holds after this step
    block_tables: torch.Tensor  # [S, max_blocks] int64, KV blocks of each segment's sequence (0-padded)
    max_query_len: int
    max_context_len: int
    logits_indices: torch.Tensor  # [R] int64, token rows whose logits are wanted
    num_kv_tokens: int | None = None  # sum(context_lens) when the host knows it (saves a device sync)
    packed_kv: PackedKV | None = None  # set on the device when the step's attention packs segments
    num_quantized_segments: int = 0  # the first segments, whose rows are [0, num_quantized)
    fp8_attention: bool = False  # the quantized rows' prompt attention runs in FP8 (`kernels.fp8_prefill_attention`)

    @property
    def num_tokens(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device) -> StepBatch:
        fields = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                  for k, v in self.__dict__.items()}
        return StepBatch(**fields)
