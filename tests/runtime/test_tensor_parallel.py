"""Tensor parallelism: a model split over 2 and 4 CPU ranks (gloo, fp32) computes the logits of the
whole model, for every family, mode and context precision.

Tolerance: the row-parallel projections sum their partial products over the ranks, so each output
is the same sum in another order; fp32 reordering over K <= 128 terms of these magnitudes moves
logits by ~1e-6, and 1e-4 leaves room without hiding a wrong shard (a misplaced head or block moves
them by ~1e-1). Quantized rows must still round identically: NVFP4 blocks of 16 and the per-tensor
scales are the same on every rank.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.tp_ranks import run_ranks
from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.runtime.batch import StepBatch
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.loader import CheckpointError, TensorReader, load_causal_lm
from trtllm_mixquant.runtime.parallel import TPGroup, check_tp
from trtllm_mixquant.runtime.quantized import make_quantized_kernel

FAMILIES, PRECISIONS = ("qwen3", "qwen2", "llama"), ("nvfp4", "fp8")
PROMPT = torch.randint(0, 256, (13,), generator=torch.Generator().manual_seed(3)).tolist()
BLOCK = 4


def _step(model, kv, ids: list[int], start: int, num_quantized: int, table: list[int]) -> torch.Tensor | None:
    """Logits at every position of tokens [start, start + len(ids)) of one sequence."""
    t, end = len(ids), start + len(ids)
    pos = torch.arange(start, end)
    blocks = torch.tensor([table])
    batch = StepBatch(torch.tensor(ids), pos, blocks[0, pos // BLOCK] * BLOCK + pos % BLOCK, num_quantized,
                      torch.tensor([0, t]), torch.tensor([end]), blocks, t, end, torch.arange(t))
    with torch.no_grad():
        return model(batch, kv)


def logits_by_case(tp: TPGroup, cases: list[tuple[str, str, str]]) -> dict:
    """For each (family, precision, engines): logits of a prompt prefilled in bf16, quantized and mixquant
    steps (the last two tokens precise), then of one decode token over it, in that order."""
    out = {}
    for family, precision, engines in cases:
        dirs = resolve_engine_dirs(engines)
        model = load_causal_lm(dirs.generation, dirs.context, torch.float32, "cpu", make_quantized_kernel, tp=tp)
        cfg = model.config
        layout = KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, "float32", BLOCK, tp.size, tp.rank)
        for mode, quantized in (("bf16", 0), ("quantized", len(PROMPT)), ("mixquant", len(PROMPT) - 2)):
            kv = KVCache(layout, 8, torch.device("cpu"))
            table = [6, 1, 4, 0, 2]
            prompt = _step(model, kv, PROMPT[:-1], 0, quantized, table)
            decode = _step(model, kv, PROMPT[-1:], len(PROMPT) - 1, 1 if mode == "quantized" else 0, table)
            if tp.rank == 0:
                out[family, precision, mode] = torch.cat([prompt, decode])
    return out


@pytest.fixture(scope="module")
def cases(tiny_engines):
    return [(f, p, str(tiny_engines(f, p))) for f in FAMILIES for p in PRECISIONS]


@pytest.mark.parametrize("tp_size", [2, pytest.param(4, marks=pytest.mark.slow)])  # rank processes: 5 s, 12 s
def test_split_model_computes_the_whole_models_logits(cases, tp_size):
    whole = logits_by_case(TPGroup(), cases)
    split = run_ranks(tp_size, logits_by_case, cases)
    assert split.keys() == whole.keys()
    for case, logits in whole.items():
        assert logits.shape == split[case].shape
        assert (split[case] - logits).abs().max() < 1e-4, case
        assert torch.equal(split[case].argmax(-1), logits.argmax(-1)), case
    # the modes differ from one another, so each really ran its own weights
    assert (whole["qwen3", "nvfp4", "bf16"] - whole["qwen3", "nvfp4", "quantized"]).abs().max() > 1e-3


def compiled_against_eager(tp: TPGroup, engines: str) -> tuple[list, list, int]:
    """Prefill logits of two prompt lengths, eager and through `compile_regions`, and the graphs compiled."""
    from torch._dynamo.utils import counters

    dirs = resolve_engine_dirs(engines)
    model = load_causal_lm(dirs.generation, dirs.context, torch.float32, "cpu", make_quantized_kernel, tp=tp)
    cfg = model.config
    layout = KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, "float32", BLOCK, tp.size, tp.rank)

    def run() -> list:
        return [_step(model, KVCache(layout, 8, torch.device("cpu")), PROMPT[:n], 0, n - 2, [6, 1, 4, 0, 2])
                for n in (9, 13)]

    eager = run()
    torch._dynamo.reset()
    counters.clear()
    model.compile_regions()
    return eager, run(), counters["stats"]["unique_graphs"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on CPU needs a C compiler")
def test_compiled_regions_of_a_split_model_trace_its_all_reduces(tiny_engines):
    """Inductor's C++ backend on CPU: the all-reduces are traced into the regions (one graph each,
    shared by every layer and prompt length, as on one rank), and the logits stay those of eager."""
    eager, compiled, graphs = run_ranks(2, compiled_against_eager, str(tiny_engines("qwen3", "fp8")))
    for a, b in zip(eager, compiled):
        assert (a - b).abs().max() < 1e-4
    assert graphs == 2


def test_sizes_that_do_not_split_the_model_are_refused(tiny_model_dir):
    from trtllm_mixquant.runtime.loader import read_config

    cfg = read_config(tiny_model_dir("qwen3"))
    with pytest.raises(ValueError, match=r"tensor parallel size 3 does not split this model: 4 attention heads.*"
                                         r"Sizes that do: 1, 2, 4"):
        check_tp(cfg, 3)


def test_a_shard_off_the_nvfp4_blocks_is_refused(tiny_engines):
    reader = TensorReader(resolve_engine_dirs(tiny_engines("qwen3", "nvfp4")).context)
    name = "model.layers.0.mlp.down_proj.weight_scale"
    assert reader.get(name, (1, 64, 128, 128)).shape == (64, 4)  # [N, K / 16]: the second half of K
    with pytest.raises(CheckpointError, match="does not fall on the boundaries"):
        reader.get(name, (1, 8, 72, 128))
