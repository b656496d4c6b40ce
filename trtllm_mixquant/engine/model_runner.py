"""Runs the model for a `StepBatch`; on CUDA, the layers run compiled (`CausalLM.compile_regions`)
and steps replay captured CUDA graphs (`cuda_graphs`): whole decode steps, and the pieces between
attentions of any other step of at most 2,048 tokens.
"""

from __future__ import annotations

import logging

import torch

from trtllm_mixquant.engine.cuda_graphs import DecodeGraphs, PiecewiseGraphs
from trtllm_mixquant.engine.ranks import STEP
from trtllm_mixquant.runtime.batch import StepBatch
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.model import CausalLM

log = logging.getLogger(__name__)


class ModelRunner:
    def __init__(self, model: CausalLM, kv: KVCache, scratch_block: int, max_blocks_per_seq: int,
                 max_num_seqs: int, max_step_tokens: int, use_cuda_graphs: bool, compile_regions: bool = True):
        self.model, self.kv = model, kv
        self.device = kv.k.device
        graphs = use_cuda_graphs and self.device.type == "cuda"
        self.decode_graphs = DecodeGraphs(model, kv, scratch_block, max_blocks_per_seq, max_num_seqs) if graphs else None
        self.piecewise_graphs = PiecewiseGraphs(model, kv, max_step_tokens) if graphs else None
        if compile_regions and self.device.type == "cuda":
            model.compile_regions()
            log.info("layers compiled with torch.compile: the first step of each kind (prefill, decode, "
                     "precise, quantized) compiles for a while")

    @torch.inference_mode()
    def forward(self, batch: StepBatch) -> torch.Tensor | None:
        """Logits [R, vocab] (fp32) for `batch.logits_indices` (None on tensor-parallel ranks but 0).
        Rank 0 of a tensor-parallel group first sends the batch to the other ranks, which run this too."""
        tp = self.model.tp
        if tp.size > 1 and tp.rank == 0:
            tp.broadcast((STEP, batch))
        if self.decode_graphs is not None and self.decode_graphs.covers(batch):
            return self.decode_graphs(batch)
        batch = batch.to(self.device)
        if self.piecewise_graphs is not None and self.piecewise_graphs.key(batch) is not None:
            return self.piecewise_graphs(batch)
        return self.model(batch, self.kv)
