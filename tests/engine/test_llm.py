"""The offline LLM API: phase rules against an independent reference, batching, caching, sampling."""

from __future__ import annotations

import pytest
import torch

from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams
from tests.runtime.reference import hf_model, reference_greedy, reference_logprobs

PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 3, "a", "xyz" * 30]
GREEDY = SamplingParams(max_tokens=6, ignore_eos=True)


@pytest.fixture(scope="module")
def engines(tiny_engines):
    return tiny_engines("qwen3", "nvfp4")


@pytest.fixture(scope="module")
def llms(engines):
    cache = {}

    def get(mode, **kw):
        key = (mode, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = LLM(engines, mode=mode, dtype=torch.float32, **kw)
        return cache[key]

    return get


# fp32 everywhere: differences come only from summation order, far below 1e-4 in log-probability.
@pytest.mark.parametrize("mode, quantized_rows", [("bf16", lambda p: 0), ("quantized", lambda p: 10**9),
                                                  ("mixquant", lambda p: p - 1)])
@pytest.mark.parametrize("precision", ["nvfp4", "fp8"])
def test_score_matches_reference_phase_rule(tiny_engines, mode, quantized_rows, precision):
    engines = tiny_engines("qwen3", precision)
    llm = LLM(engines, mode=mode, dtype=torch.float32)
    prompt, cont = llm.tokens("the tool returned 42 and then"), llm.tokens(" the answer is 42.")
    ours = torch.tensor(llm.score(prompt, cont))
    ref = reference_logprobs(hf_model(engines / "generation"), engines / "context", prompt, cont,
                             quantized_rows(len(prompt)))
    assert ours.shape == ref.shape and (ours - ref).abs().max() < 1e-4


def test_modes_differ_so_the_reference_test_can_fail(llms):
    prompt, cont = "the tool returned 42 and then", " the answer is 42."
    scores = {m: torch.tensor(llms(m).score(prompt, cont)) for m in ("bf16", "quantized", "mixquant")}
    assert (scores["bf16"] - scores["quantized"]).abs().max() > 1e-3
    assert (scores["mixquant"] - scores["quantized"]).abs().max() > 1e-3


@pytest.mark.parametrize("k", [1, 3])
def test_mixquant_greedy_matches_reference(engines, llms, k):
    llm = llms("mixquant", num_precise_prompt_tokens=k)
    prompt = llm.tokens(PROMPTS[1])
    ref = reference_greedy(hf_model(engines / "generation"), engines / "context", prompt, 6, len(prompt) - k)
    assert llm.generate(prompt, GREEDY)[0].token_ids == ref


@pytest.mark.parametrize("mode", ["bf16", "mixquant", "quantized"])
def test_batch_equals_alone(llms, mode):
    llm = llms(mode)
    together = [o.token_ids for o in llm.generate(PROMPTS, GREEDY)]
    alone = [llm.generate(p, GREEDY)[0].token_ids for p in PROMPTS]
    assert together == alone


def test_chunked_prefill_and_preemption_keep_outputs(llms):
    expected = [o.token_ids for o in llms("mixquant").generate(PROMPTS, GREEDY)]
    small = llms("mixquant", max_step_tokens=7, kv_cache_blocks=5)  # forces chunks and preemption
    assert [o.token_ids for o in small.generate(PROMPTS, GREEDY)] == expected


def test_prefix_cache_reuses_blocks_without_changing_output(llms):
    llm = llms("mixquant", kv_cache_blocks=64)
    prefix = "shared system prompt " * 6
    first = llm.generate(prefix + "question one", GREEDY)[0]
    second = llm.generate(prefix + "question two", GREEDY)[0]
    fresh = llms("mixquant", kv_cache_blocks=63).generate(prefix + "question two", GREEDY)[0]
    assert first.num_cached_prompt_tokens == 0
    assert second.num_cached_prompt_tokens >= 32
    assert second.token_ids == fresh.token_ids and fresh.num_cached_prompt_tokens == 0


def test_sampling_is_reproducible_per_seed_whatever_the_batch(llms):
    llm = llms("bf16")
    p = SamplingParams(max_tokens=8, temperature=1.0, top_p=0.9, top_k=50, seed=7, ignore_eos=True)
    alone = llm.generate(PROMPTS[0], p)[0].token_ids
    batched = llm.generate([PROMPTS[0], PROMPTS[1]], p)[0].token_ids
    other_seed = llm.generate(PROMPTS[0], SamplingParams(max_tokens=8, temperature=1.0, seed=8, ignore_eos=True))
    assert alone == batched and other_seed[0].token_ids != alone


def test_top_k_one_is_greedy(llms):
    llm = llms("bf16")
    sampled = llm.generate(PROMPTS[0], SamplingParams(max_tokens=6, temperature=0.8, top_k=1, seed=1, ignore_eos=True))
    assert sampled[0].token_ids == llm.generate(PROMPTS[0], GREEDY)[0].token_ids


def test_stop_conditions(llms):
    llm = llms("bf16")
    free = llm.generate(PROMPTS[1], GREEDY)[0]
    stop_id = free.token_ids[2]
    out = llm.generate(PROMPTS[1], SamplingParams(max_tokens=6, stop_token_ids=[stop_id], ignore_eos=True))[0]
    assert out.finish_reason == "stop" and out.token_ids == free.token_ids[:free.token_ids.index(stop_id) + 1]
    assert free.finish_reason == "length" and len(free.token_ids) == 6
    stop_text = free.text[2:5]
    cut = llm.generate(PROMPTS[1], SamplingParams(max_tokens=6, stop=[stop_text], ignore_eos=True))[0]
    assert cut.finish_reason == "stop" and cut.text == free.text[:free.text.find(stop_text)]


def test_chat_uses_the_chat_template(llms):
    llm = llms("mixquant")
    messages = [{"role": "user", "content": "hi"}]
    out = llm.chat(messages, params=GREEDY)
    prompt = llm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert out.prompt_token_ids == llm.tokens(prompt)
    assert out.token_ids == llm.generate(prompt, GREEDY)[0].token_ids


def test_bad_requests_are_refused_clearly(llms, engines):
    llm = llms("mixquant")
    with pytest.raises(ValueError, match="exceeds the engine's maximum sequence length of 2048"):
        llm.generate("x" * 2100, GREEDY)
    with pytest.raises(ValueError, match="prompt is empty"):
        llm.generate("", GREEDY)
    with pytest.raises(ValueError, match="top_p must be in"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        LLM(engines, mode="fp4")
    assert llm.generate("still works", GREEDY)[0].finish_reason == "length"


def test_score_distributions_agree_with_score(llms):
    llm = llms("mixquant")
    prompt, cont = "the tool returned 42 and then", " the answer is 42."
    dists = llm.score_distributions(prompt, cont)
    ids = llm.tokens(cont)
    assert dists.shape == (len(ids), llm.engine.model.config.vocab_size)
    torch.testing.assert_close(dists.exp().sum(-1), torch.ones(len(ids)))
    torch.testing.assert_close(dists[torch.arange(len(ids)), ids], torch.tensor(llm.score(prompt, cont)))


def test_fp8_attention_changes_the_quantized_prefill_only(engines):
    """bf16 mode has no quantized rows (nothing changes); in quantized and mixquant modes the prompt's
    attention runs in FP8 and the scores move by FP8-sized amounts, not more."""
    prompt, cont = "the tool returned 42 and then " * 4, " the answer is 42."
    plain = {m: torch.tensor(LLM(engines, mode=m, dtype=torch.float32).score(prompt, cont)) for m in ("bf16", "quantized")}
    fp8 = LLM(engines, mode="mixquant", dtype=torch.float32, fp8_attention="all")
    assert torch.equal(torch.tensor(fp8.score(prompt, cont, mode="bf16")), plain["bf16"])
    moved = (torch.tensor(fp8.score(prompt, cont, mode="quantized")) - plain["quantized"]).abs().max()
    assert 0 < moved < 0.5
