"""GPU-only checks of the engine: CUDA-graph decode and the Triton decode kernel inside the model."""

from __future__ import annotations

import pytest
import torch

from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 3, "a", "xyz" * 30]
GREEDY = SamplingParams(max_tokens=12, ignore_eos=True)


@pytest.mark.parametrize("mode", ["bf16", "mixquant", "quantized"])
@pytest.mark.parametrize("precision", ["nvfp4", "fp8"])
def test_cuda_graph_decode_equals_eager(tiny_engines, mode, precision):
    engines = tiny_engines("qwen3", precision)
    eager = LLM(engines, mode=mode, device="cuda", cuda_graphs=False).generate(PROMPTS, GREEDY)
    llm = LLM(engines, mode=mode, device="cuda", cuda_graphs=True)
    graphed = llm.generate(PROMPTS, GREEDY)
    assert llm.core.runner.graphs, "no CUDA graph was captured"
    assert [o.token_ids for o in graphed] == [o.token_ids for o in eager]


def test_gpu_fp32_matches_cpu(tiny_engines):
    engines = tiny_engines("llama", "nvfp4")
    gpu = LLM(engines, mode="mixquant", device="cuda", dtype=torch.float32).generate(PROMPTS, GREEDY)
    cpu = LLM(engines, mode="mixquant", device="cpu", dtype=torch.float32).generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in gpu] == [o.token_ids for o in cpu]
