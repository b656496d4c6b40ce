"""CUDA graphs of the model's steps, so that small steps are not bound by the CPU launching kernels.

| step | graphs |
|---|---|
| decode: one token per sequence, all through one weight set, at most 128 sequences | `DecodeGraphs`: the whole step, one graph per padded batch size |
| any other step of at most 2,048 tokens (a prompt, a turn over a cached prefix, prefill mixed with decode) | `PiecewiseGraphs`: one graph per piece between two attentions, per padded token count; attention runs eagerly in between |

A decode step has static shapes once its batch is padded to a captured size and its block tables to
the engine's maximum; padding rows write their KV into a scratch block that no sequence owns.

A prefill step's attention does not have static shapes (its keys are the cached prefixes, of any
length), so, as vLLM's piecewise graphs do, only the pieces between attentions are captured: the
embedding and layer 0's `pre_attention`, then each layer's `post_attention` with the next layer's
`pre_attention`, then the last `post_attention` (with the compiled regions, each piece is a handful of
fused kernels and the GEMMs). The step's T tokens take the last T rows of the static buffers
(`PieceBuffers`, one set per padded token count); the padding rows before them are computed and
never read, and never write KV (attention sees only the step's rows). Every op in a piece is
row-wise (GEMMs, norms, SiLU·mul, static-scale activation quantization), so what padding rows hold does
not matter. A step whose first rows are quantized and last rows precise keeps that split: the
padding joins the quantized rows, so a graph is keyed by (padded size, quantized rows) and is
captured for a mixed step only when it has at most `MAX_GRAPHED_PRECISE_ROWS` precise rows
(mixquant's last prompt token or a few decode rows), which keeps the number of graphs small.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from trtllm_mixquant.runtime.attention import pack_kv
from trtllm_mixquant.runtime.batch import StepBatch
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.model import CausalLM

log = logging.getLogger(__name__)
DECODE_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
PIECEWISE_TOKEN_COUNTS = (16, 32, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048)  # padding wastes < 50%
MAX_GRAPHED_PRECISE_ROWS = 8
WARMUP_RUNS = 2  # before capture, outside any graph: compilation, Triton autotuning, cuBLAS workspaces


def capture(fn: Callable[[], object], pool=None) -> tuple[torch.cuda.CUDAGraph, object]:
    """Run `fn` to warm up, then capture it; returns the graph and what the captured call returned."""
    for _ in range(WARMUP_RUNS):
        fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        out = fn()
    return graph, out


class DecodeGraphs:
    """Whole decode steps replayed from graphs captured per (padded batch size, quantized weights)."""

    def __init__(self, model: CausalLM, kv: KVCache, scratch_block: int, max_blocks_per_seq: int,
                 max_num_seqs: int):
        self.model, self.kv = model, kv
        self.scratch_block, self.max_blocks = scratch_block, max_blocks_per_seq
        self.sizes = [b for b in DECODE_BATCH_SIZES if b <= max(max_num_seqs, 1)]
        self.graphs: dict[tuple[int, bool], tuple[torch.cuda.CUDAGraph, StepBatch, torch.Tensor | None]] = {}

    def covers(self, batch: StepBatch) -> bool:
        b = batch.num_tokens
        return (batch.max_query_len == 1 and batch.logits_indices.shape[0] == b
                and batch.num_quantized in (0, b) and b <= self.sizes[-1])

    def __call__(self, batch: StepBatch) -> torch.Tensor | None:
        """Logits [B, vocab] of a decode step (`covers(batch)`); `batch` may still be on the host."""
        b = batch.num_tokens
        size = next(s for s in self.sizes if s >= b)
        key = (size, batch.num_quantized > 0)
        if key not in self.graphs:
            static = self._static_batch(size, key[1])
            graph, logits = capture(lambda: self.model(static, self.kv))
            log.info("captured a CUDA graph for decode batch size %d (%s weights)", size,
                     "quantized" if key[1] else "precise")
            self.graphs[key] = graph, static, logits
        graph, static, logits = self.graphs[key]
        self._fill(static, batch)
        graph.replay()
        return None if logits is None else logits[:b]

    def _static_batch(self, size: int, quantized: bool) -> StepBatch:
        bs = self.kv.layout.block_size
        d = self.kv.k.device
        return StepBatch(
            input_ids=torch.zeros(size, dtype=torch.long, device=d),
            positions=torch.zeros(size, dtype=torch.long, device=d),
            slot_mapping=torch.full((size,), self.scratch_block * bs, dtype=torch.long, device=d),
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


@dataclass
class PieceBuffers:
    """The static inputs and outputs of one padded token count N's pieces (this rank's heads)."""

    input_ids: torch.Tensor  # [N] int64
    hidden: torch.Tensor  # [N, hidden], the residual stream
    q: torch.Tensor  # [N, H, D]
    k: torch.Tensor  # [N, Hkv, D]
    v: torch.Tensor  # [N, Hkv, D]
    attn: torch.Tensor  # [N, H * D], attention's output, written between pieces

    @classmethod
    def allocate(cls, model: CausalLM, size: int, device: torch.device) -> PieceBuffers:
        attn = model.model.layers[0].self_attn
        h, hkv, d = attn.num_heads, attn.num_kv_heads, attn.head_dim
        dtype = model.model.embed_tokens.weight.dtype

        def zeros(*shape, dt=dtype):
            return torch.zeros(*shape, dtype=dt, device=device)

        return cls(zeros(size, dt=torch.long), zeros(size, model.config.hidden_size),
                   zeros(size, h, d), zeros(size, hkv, d), zeros(size, hkv, d), zeros(size, h * d))


class PiecewiseGraphs:
    """Steps of at most `max_tokens` (<= 2,048) tokens with graphed pieces and eager attention."""

    def __init__(self, model: CausalLM, kv: KVCache, max_tokens: int):
        self.model, self.kv = model, kv
        self.sizes = PIECEWISE_TOKEN_COUNTS[:bisect.bisect_left(PIECEWISE_TOKEN_COUNTS, max_tokens) + 1]
        self.pool = torch.cuda.graph_pool_handle()  # one pool: pieces never run at the same time
        self.graphs: dict[tuple[int, int], tuple[list[torch.cuda.CUDAGraph], PieceBuffers]] = {}
        self.buffers: dict[int, PieceBuffers] = {}  # one set per padded size, shared by its splits

    def key(self, batch: StepBatch) -> tuple[int, int] | None:
        """(padded token count, quantized rows in it) of the graphs that run `batch`, or None."""
        t, quantized = batch.num_tokens, batch.num_quantized
        if t > self.sizes[-1] or 0 < quantized < t - MAX_GRAPHED_PRECISE_ROWS:
            return None
        size = next(n for n in self.sizes if n >= t)
        return size, (0 if quantized == 0 else size - (t - quantized))

    def __call__(self, batch: StepBatch) -> torch.Tensor | None:
        """Logits [R, vocab] of `batch` (on the device, `key(batch)` not None)."""
        size, quantized = key = self.key(batch)
        if key not in self.graphs:
            self.graphs[key] = self._capture(size, quantized)
        pieces, buf = self.graphs[key]
        rows = slice(size - batch.num_tokens, size)
        buf.input_ids[rows].copy_(batch.input_ids)
        bs = self.kv.layout.block_size
        batch = pack_kv(batch, bs, buf.hidden.dtype)
        for i, layer in enumerate(self.model.model.layers):
            pieces[i].replay()
            out = layer.self_attn.attend(buf.q[rows], buf.k[rows], buf.v[rows], batch, self.kv.k[i], self.kv.v[i], bs)
            buf.attn[rows].copy_(out)
        pieces[-1].replay()
        return self.model.logits(buf.hidden[rows], batch.logits_indices)

    def _capture(self, size: int, quantized: int) -> tuple[list[torch.cuda.CUDAGraph], PieceBuffers]:
        if size not in self.buffers:
            self.buffers[size] = PieceBuffers.allocate(self.model, size, self.kv.k.device)
        buf = self.buffers[size]
        layers = self.model.model.layers

        def piece(i: int) -> Callable[[], None]:
            """Piece i: what runs between attention i - 1 and attention i (i = 0: from the embedding;
            i = len(layers): up to the final norm)."""
            def run() -> None:
                if i == 0:
                    buf.hidden.copy_(self.model.model.embed_tokens(buf.input_ids))
                else:
                    buf.hidden.copy_(layers[i - 1].post_attention(buf.hidden, buf.attn, quantized))
                if i < len(layers):
                    for out, t in zip((buf.q, buf.k, buf.v), layers[i].pre_attention(buf.hidden, quantized)):
                        out.copy_(t)
            return run

        pieces = [capture(piece(i), self.pool)[0] for i in range(len(layers) + 1)]
        log.info("captured CUDA graphs of %d pieces for steps of up to %d tokens (%d quantized rows)", len(pieces),
                 size, quantized)
        return pieces, buf
