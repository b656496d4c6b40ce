"""Asynchronous scheduling (`engine.overlap`) against the engine without it: the same tokens, finish
reasons, logprobs and prefix-cache hits, and no block left behind, whatever ends a sequence.

On the CPU nothing overlaps (the host runs each step itself), but every path is the one a GPU takes:
placeholders, input ids filled from the sampled tokens, a step's tokens read a step late, rows
dropped when a token read late ended their sequence.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from trtllm_mixquant.engine.base import EngineRequest
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams

PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 3, "a", "xyz" * 30]


@pytest.fixture(scope="module")
def engines(tiny_engines):
    return tiny_engines("qwen3", "nvfp4")


@pytest.fixture(scope="module")
def pair(engines):
    """(without, with) asynchronous scheduling, else alike."""
    def make(**kw):
        return tuple(LLM(engines, dtype=torch.float32, async_scheduling=a, **kw) for a in (False, True))
    return make


@pytest.fixture(scope="module")
def llms(pair):
    return pair()


def outputs(llm, prompts, params):
    return [(o.token_ids, o.finish_reason, o.num_cached_prompt_tokens) for o in llm.generate(prompts, params)]


def all_blocks_free(llm) -> bool:
    usage = llm.engine.block_usage()
    llm.engine.check_blocks()
    return usage.free == usage.total and not llm.engine.has_work()


def test_a_step_is_read_one_step_late(llms, monkeypatch):
    """What makes it asynchronous: the token a step samples comes out of the next call. A sequence
    whose token in flight is its last by length is held out: no forward step is spent on it."""
    for llm, first in zip(llms, ([1], [])):
        engine, forwards = llm.engine, []
        forward = engine.runner.forward
        monkeypatch.setattr(engine.runner, "forward", lambda batch: forwards.append(batch) or forward(batch))
        engine.add(EngineRequest("late", llm.tokens(PROMPTS[0]), SamplingParams(max_tokens=3, ignore_eos=True), 0))
        assert [len(u.token_ids) for u in engine.step()] == first
        while engine.has_work():
            engine.step()
        assert len(forwards) == 3


def test_greedy_sampled_and_length_limits_equal_synchronous(llms):
    plain = [SamplingParams(max_tokens=n, ignore_eos=True) for n in (1, 2, 7, 12)]
    seeded = [SamplingParams(max_tokens=9, temperature=0.8, top_p=0.9, top_k=20, seed=s, ignore_eos=True)
              for s in (1, 2)]
    for params in plain + seeded:
        assert outputs(llms[1], PROMPTS, params) == outputs(llms[0], PROMPTS, params)
    assert all(all_blocks_free(llm) for llm in llms)


def test_a_stop_token_read_late_drops_the_extra_step(llms):
    """Stop on a token the model does produce mid-output: the asynchronous engine has computed one more
    step for that sequence by the time it reads the token, and must drop it."""
    sync, overlapped = llms
    long = SamplingParams(max_tokens=12, ignore_eos=True)
    stop_ids = {ids[4] for ids, _, _ in outputs(sync, PROMPTS, long)}
    params = replace(long, stop_token_ids=sorted(stop_ids))
    expected = outputs(sync, PROMPTS, params)
    assert any(reason == "stop" and len(ids) < 12 for ids, reason, _ in expected)
    assert outputs(overlapped, PROMPTS, params) == expected
    assert all(all_blocks_free(llm) for llm in llms)


def test_rows_that_need_the_host_sample_after_the_wait(llms):
    """Penalties and logprobs in the same batch as deferred rows: they read the tokens read late."""
    penalized = SamplingParams(max_tokens=8, repetition_penalty=1.3, frequency_penalty=0.5, ignore_eos=True)
    with_logprobs = SamplingParams(max_tokens=5, logprobs=2, ignore_eos=True)
    plain = SamplingParams(max_tokens=10, ignore_eos=True)
    results = []
    for llm in llms:
        engine = llm.engine
        for i, (prompt, params) in enumerate(zip(PROMPTS, (plain, penalized, with_logprobs, plain))):
            engine.add(EngineRequest(f"mix-{i}", llm.tokens(prompt), params, 0))
        got = {}
        while engine.has_work():
            for u in engine.step():
                ids, logprobs = got.setdefault(u.request_id, ([], []))
                ids += u.token_ids
                logprobs += [(lp.logprob, lp.top) for lp in u.logprobs or []]
        results.append(got)
    assert results[1] == results[0]
    assert [len(results[0][f"mix-{i}"][0]) for i in range(4)] == [10, 8, 5, 10]
    assert len(results[0]["mix-2"][1]) == 5


def test_preemption_and_prefix_cache_equal_synchronous(pair):
    small = pair(max_step_tokens=7, kv_cache_blocks=5)  # chunked prefill and preemption
    params = SamplingParams(max_tokens=6, ignore_eos=True)
    assert outputs(small[1], PROMPTS, params) == outputs(small[0], PROMPTS, params)
    cached = pair(kv_cache_blocks=64)
    history = PROMPTS[1] * 2
    for llm in cached:  # a turn's prompt holds the output before it: its blocks come from the cache
        first = llm.generate(history, params)[0]
        llm.generate(first.prompt_token_ids + first.token_ids + llm.tokens(" next"), params)
    turn = [cached[0].tokens(history) + cached[0].generate(history, params)[0].token_ids]
    assert outputs(cached[1], turn, params) == outputs(cached[0], turn, params)
    assert outputs(cached[0], turn, params)[0][2] > 0
    assert all(all_blocks_free(llm) for llm in small + cached)


def run(engine, requests, abort_after: dict[str, int] | None = None) -> dict[str, list[int]]:
    """Drive the engine over (request id, prompt ids, params); abort a request once it has that many tokens."""
    for rid, ids, params in requests:
        engine.add(EngineRequest(rid, ids, params, 0))
    got = {rid: [] for rid, _, _ in requests}
    while engine.has_work():
        for u in engine.step():
            got[u.request_id] += u.token_ids
            if len(got[u.request_id]) == (abort_after or {}).get(u.request_id):
                engine.abort(u.request_id)
    return got


def test_abort_while_its_token_is_in_flight(llms):
    sync, overlapped = llms
    params = SamplingParams(max_tokens=10, ignore_eos=True)
    requests = [(rid, sync.tokens(p), params) for rid, p in zip(("keep", "drop"), PROMPTS)]
    expected = run(sync.engine, requests[:1])["keep"]
    got = run(overlapped.engine, requests, abort_after={"drop": 2})  # its third token is in flight then
    assert got == {"keep": expected, "drop": got["drop"][:2]}
    assert all_blocks_free(overlapped)


def test_default_is_off_on_the_cpu_and_refused_with_tensor_parallelism(engines):
    assert not LLM(engines, dtype=torch.float32, device="cpu").engine.overlap
    with pytest.raises(ValueError, match="one rank only"):
        LLM(engines, dtype=torch.float32, async_scheduling=True, tensor_parallel_size=2)
