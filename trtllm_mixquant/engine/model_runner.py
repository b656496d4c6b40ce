"""Runs the model for a `StepBatch`; on CUDA, the layers run compiled (`CausalLM.compile_regions`)
and decode steps replay captured CUDA graphs.

A decode step (one new token per sequence, all through the same weights) has static shapes once its
batch is padded to a captured size and its block tables to the engine's maximum, so it is captured
once per size and replayed: no per-layer kernel launch overhead from Python. Padding rows write
their KV into a scratch block that no sequence owns.
"""

from __future__ import annotations

import logging

import torch

from trtllm_mixquant.engine.ranks import STEP
from trtllm_mixquant.runtime.batch import StepBatch
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.model import CausalLM

log = logging.getLogger(__name__)
GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)


class ModelRunner:
    def __init__(self, model: CausalLM, kv: KVCache, scratch_block: int, max_blocks_per_seq: int,
                 max_num_seqs: int, use_cuda_graphs: bool, compile_regions: bool = True):
        self.model, self.kv = model, kv
        self.device = kv.k.device
        self.scratch_block, self.max_blocks = scratch_block, max_blocks_per_seq
        self.graph_sizes = [b for b in GRAPH_BATCH_SIZES if b <= max(max_num_seqs, 1)]
        self.graphs: dict[tuple[int, bool], tuple[torch.cuda.CUDAGraph, StepBatch, torch.Tensor]] = {}
        self.use_graphs = use_cuda_graphs and self.device.type == "cuda"
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
        b = batch.num_tokens
        decode = (batch.max_query_len == 1 and batch.logits_indices.shape[0] == b
                  and batch.num_quantized in (0, b) and b <= self.graph_sizes[-1])
        if not (self.use_graphs and decode):
            return self.model(batch.to(self.device), self.kv)
        size = next(s for s in self.graph_sizes if s >= b)
        key = (size, batch.num_quantized > 0)
        if key not in self.graphs:
            self.graphs[key] = self._capture(size, key[1])
        graph, static, logits = self.graphs[key]
        self._fill(static, batch)
        graph.replay()
        return None if logits is None else logits[:b]

    def _static_batch(self, size: int, quantized: bool) -> StepBatch:
        bs = self.kv.layout.block_size
        scratch = self.scratch_block * bs
        d = self.device
        return StepBatch(
            input_ids=torch.zeros(size, dtype=torch.long, device=d),
            positions=torch.zeros(size, dtype=torch.long, device=d),
            slot_mapping=torch.full((size,), scratch, dtype=torch.long, device=d),
            num_quantized=size if quantized else 0,
            query_start=torch.arange(size + 1, device=d),
            context_lens=torch.ones(size, dtype=torch.long, device=d),
            block_tables=torch.full((size, self.max_blocks), self.scratch_block, dtype=torch.long, device=d),
            max_query_len=1,
            max_context_len=self.max_blocks * bs,
            logits_indices=torch.arange(size, device=d),
        )

    def _fill(self, static: StepBatch, batch: StepBatch) -> None:
        b, width = batch.num_tokens, batch.block_tables.shape[1]
        static.input_ids[:b].copy_(batch.input_ids, non_blocking=True)
        static.positions[:b].copy_(batch.positions, non_blocking=True)
        static.slot_mapping.fill_(self.scratch_block * self.kv.layout.block_size)
        static.slot_mapping[:b].copy_(batch.slot_mapping, non_blocking=True)
        static.context_lens.fill_(1)
        static.context_lens[:b].copy_(batch.context_lens, non_blocking=True)
        static.block_tables.fill_(self.scratch_block)
        static.block_tables[:b, :width].copy_(batch.block_tables, non_blocking=True)

    def _capture(self, size: int, quantized: bool):
        static = self._static_batch(size, quantized)
        for _ in range(2):  # warm up (Triton compilation, cuBLAS handles) outside the graph
            self.model(static, self.kv)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits = self.model(static, self.kv)
        log.info("captured a CUDA graph for decode batch size %d (%s weights)", size,
                 "quantized" if quantized else "precise")
        return graph, static, logits
