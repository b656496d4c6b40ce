"""`CausalLM.compile_regions` (what the engine does on a GPU), checked on CPU with inductor's C++ backend."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch._dynamo.utils import counters

from trtllm_mixquant.runtime.loader import load_causal_lm

from .test_model_vs_hf import prefill

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                                    reason="torch.compile on CPU needs a C compiler")]


def test_compiled_regions_equal_eager_and_compile_once_for_all_layers(tiny_model_dir):
    model = load_causal_lm(tiny_model_dir("qwen3"), dtype=torch.float32)
    assert model.config.num_layers >= 2
    ids = [torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(n)) for n in (13, 29)]
    eager = [prefill(model, x, torch.float32, blocks=tuple(range(8))) for x in ids]
    torch._dynamo.reset()
    counters.clear()
    model.compile_regions()
    compiled = [prefill(model, x, torch.float32, blocks=tuple(range(8))) for x in ids]
    # fp32, same operations: only the order of the fused reductions (RMSNorm's mean) may differ.
    for a, b in zip(compiled, eager):
        assert (a - b).abs().max() < 1e-4
    # One graph per region, shared by every layer and by both prompt lengths (dynamic token count).
    assert counters["stats"]["unique_graphs"] == 2
