"""`PiecewiseGraphs` on CPU: the pieces and the padding rows around eager attention compute the model's
own logits and KV. CUDA graphs cannot run here, so `capture` is replaced by a plain call of the piece
(the capture itself runs in tests/engine/test_cuda.py on a GPU); everything else is the real model.

Tolerance: the padded steps run the same fp32 row-wise math on more rows; only the GEMMs' blocking,
which may depend on the row count, can reorder a sum (~1e-6 here); a misplaced row, a padding row
that writes KV or attends, or a lost quantized/precise split moves logits by ~1e-2 or more.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from trtllm_mixquant.engine import cuda_graphs
from trtllm_mixquant.engine.cuda_graphs import MAX_GRAPHED_PRECISE_ROWS, PiecewiseGraphs
from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.runtime.batch import StepBatch
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.loader import load_causal_lm
from trtllm_mixquant.runtime.quantized import make_quantized_kernel

BLOCK = 4
TABLE = [6, 1, 4, 0, 2, 5]
PROMPT = torch.randint(0, 256, (21,), generator=torch.Generator().manual_seed(5)).tolist()


@pytest.fixture(scope="module")
def model(tiny_engines):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cuda_graphs, "capture", lambda fn, pool=None: (SimpleNamespace(replay=fn), None))
        patch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
        dirs = resolve_engine_dirs(tiny_engines("qwen3", "fp8"))
        yield load_causal_lm(dirs.generation, dirs.context, torch.float32, "cpu", make_quantized_kernel)


def step(ids: list[int], start: int, num_quantized: int) -> StepBatch:
    """Tokens [start, start + len(ids)) of one sequence in blocks TABLE; logits at every row."""
    t, end = len(ids), start + len(ids)
    pos = torch.arange(start, end)
    blocks = torch.tensor([TABLE])
    return StepBatch(torch.tensor(ids), pos, blocks[0, pos // BLOCK] * BLOCK + pos % BLOCK, num_quantized,
                     torch.tensor([0, t]), torch.tensor([end]), blocks, t, end, torch.arange(t), end,
                     num_quantized_segments=int(num_quantized > 0))


def test_padded_pieces_compute_the_models_logits_and_kv(model):
    """One `PiecewiseGraphs` runs bf16, quantized and mixed steps in turn, so its padded size's buffers
    hold another split's rows each time (they must not matter)."""
    cfg = model.config
    layout = KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, "float32", BLOCK)
    caches = [KVCache(layout, 8, torch.device("cpu")) for _ in range(2)]
    graphs = PiecewiseGraphs(model, caches[1], max_tokens=64)
    # a prompt of 16 tokens (no padding), then a turn of 5 over it (padded to 16: 11 padding rows);
    # each case rewrites the same slots
    turns = [(PROMPT[:16], 0), (PROMPT[16:], 16)]
    for precise_rows in (21, 0, 1, MAX_GRAPHED_PRECISE_ROWS, 0):  # bf16, quantized, mixed, mixed, quantized
        with torch.inference_mode():
            for ids, start in turns:
                quantized = max(len(ids) - precise_rows, 0)
                batch = step(ids, start, quantized)
                assert graphs.key(batch) == (16, 0 if quantized == 0 else 16 - (len(ids) - quantized))
                want = model(batch, caches[0])
                got = graphs(batch)
                assert got.shape == want.shape
                assert (got - want).abs().max() < 1e-5, precise_rows
        for k_or_v in ("k", "v"):  # the same KV in the same slots; padding rows wrote nothing anywhere
            assert (getattr(caches[0], k_or_v) - getattr(caches[1], k_or_v)).abs().max() < 1e-5
    unused = sorted(set(range(8)) - set(TABLE))
    assert not caches[1].k_blocks[:, unused].any()
    assert len(graphs.buffers) == 1 and len(graphs.graphs) == 4


def test_steps_it_does_not_graph(model):
    cfg = model.config
    kv = KVCache(KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, "float32", BLOCK), 8,
                 torch.device("cpu"))
    graphs = PiecewiseGraphs(model, kv, max_tokens=48)
    assert graphs.sizes == (16, 32, 64)  # up to the first count that holds max_tokens
    assert graphs.key(step(PROMPT[:20], 0, 20 - MAX_GRAPHED_PRECISE_ROWS)) == (32, 32 - MAX_GRAPHED_PRECISE_ROWS)
    assert graphs.key(step(PROMPT[:20], 0, 19 - MAX_GRAPHED_PRECISE_ROWS)) is None  # too many precise rows
    too_long = dataclasses.replace(step(PROMPT[:20], 0, 0), input_ids=torch.zeros(65, dtype=torch.long))
    assert graphs.key(too_long) is None  # more tokens than the largest count
