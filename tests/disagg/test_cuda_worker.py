"""A worker process on the GPU, forked from the fork server (`trtllm_mixquant.processes`): the server
imported torch but never touched CUDA, so the worker starts its own CUDA context."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from trtllm_mixquant.disagg.config import OrchestratorConfig
from trtllm_mixquant.disagg.orchestrator import Orchestrator
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.frontend.async_engine import GenerateRequest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 3, "a"]
GREEDY = SamplingParams(max_tokens=8, ignore_eos=True)


def test_colocated_cuda_worker_equals_offline_llm(tiny_engines):
    """fp32 and CUDA graphs on both sides: the worker and the offline engine run the same kernels."""
    engines = tiny_engines("qwen3", "nvfp4")
    engine = EngineConfig(Path(engines), dtype="float32", device="cuda", cuda_graphs=True)
    orch = Orchestrator(OrchestratorConfig(engine, topology="colocated", devices=("cuda:0",)))
    llm = LLM(engines, mode="mixquant", device="cuda", dtype=torch.float32, cuda_graphs=True)
    expected = [o.token_ids for o in llm.generate(PROMPTS, GREEDY)]

    async def go():
        await orch.start()
        try:
            handles = [await orch.submit(GenerateRequest(llm.tokens(p), GREEDY)) for p in PROMPTS]
            return [(await h.result())[0] for h in handles]
        finally:
            await orch.shutdown()
    assert asyncio.run(go()) == expected
