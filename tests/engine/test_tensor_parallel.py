"""The offline LLM split over 4 CPU ranks (its own follower processes, gloo, fp32) generates
and scores what one rank does, in every mode; closing it lets the process start another group."""

from __future__ import annotations

import pytest
import torch

from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams

PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 2, "a"]
GREEDY = SamplingParams(max_tokens=8, ignore_eos=True)
pytestmark = pytest.mark.slow  # rank processes


@pytest.fixture(scope="module")
def engines(tiny_engines):
    return tiny_engines("llama", "fp8")


@pytest.fixture(scope="module")
def one_rank(engines):
    return LLM(engines, dtype=torch.float32)


@pytest.mark.parametrize("tp_size", [4])  # 2 ranks: the model test and the disaggregated ones
def test_a_split_llm_generates_and_scores_what_one_rank_does(engines, one_rank, tp_size):
    split = LLM(engines, dtype=torch.float32, tensor_parallel_size=tp_size)
    try:
        for mode in ("mixquant", "bf16", "quantized"):
            assert ([o.token_ids for o in split.generate(PROMPTS, GREEDY, mode=mode)]
                    == [o.token_ids for o in one_rank.generate(PROMPTS, GREEDY, mode=mode)]), mode
        ours, theirs = (llm.score("The unit price of SKU-1 is", " 12.50.") for llm in (split, one_rank))
        assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-4  # fp32 sums in another order (see runtime test)
    finally:
        split.close()
