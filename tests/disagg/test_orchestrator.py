"""The orchestrator with real worker processes on CPU, KV moved through NIXL."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import fields, replace

import pytest
import torch

from pathlib import Path

from trtllm_mixquant.disagg.config import OrchestratorConfig
from trtllm_mixquant.disagg.orchestrator import Orchestrator
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.errors import Overloaded, RequestFailed
from trtllm_mixquant.frontend.async_engine import GenerateRequest

pytestmark = pytest.mark.slow  # real servers or worker processes

pytest.importorskip("nixl")
PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 3, "a", "xyz" * 30]
GREEDY = SamplingParams(max_tokens=6, ignore_eos=True)
OPTIONS = dict(dtype="float32", cuda_graphs=False, device="cpu")  # fp32: outputs comparable token for token with LLM


def orchestrator_config(engines, **kw) -> OrchestratorConfig:
    """kw: fields of EngineConfig and of OrchestratorConfig, mixed (OPTIONS by default)."""
    kw = {**OPTIONS, **kw}
    engine_fields = {f.name for f in fields(EngineConfig)}
    engine = EngineConfig(Path(engines), **{k: v for k, v in kw.items() if k in engine_fields})
    return OrchestratorConfig(engine, devices=("cpu",), **{k: v for k, v in kw.items() if k not in engine_fields})


@pytest.fixture(scope="module")
def offline(engines):
    return {mode: LLM(engines, mode=mode, dtype=torch.float32) for mode in ("mixquant", "bf16")}


def started(loop, engines, **kw):
    orch = Orchestrator(orchestrator_config(engines, **kw))
    loop.run_until_complete(orch.start())
    return orch


async def submit(orch, prompt_ids, params=GREEDY, **kw):
    return await orch.submit(GenerateRequest(prompt_ids, params, **kw))


@pytest.fixture(scope="module")
def disagg(loop, engines):
    orch = started(loop, engines, context_workers=1, generation_workers=2)
    yield orch
    loop.run_until_complete(orch.shutdown())


def wait_for_kv_report(loop, handle, timeout: float = 5.0) -> None:
    """The context worker's report of a transfer may come after the request's last token (the
    generation worker needs no word from it); give it a moment."""
    for _ in range(int(timeout / 0.05)):
        if handle.timings.kv_bytes:
            return
        loop.run_until_complete(asyncio.sleep(0.05))


def run_all(loop, orch, prompts, params=GREEDY, **kw):
    async def go():
        handles = [await submit(orch, p, params, **kw) for p in prompts]
        return [await h.result() for h in handles], handles
    return loop.run_until_complete(go())


@pytest.mark.parametrize("mode", ["mixquant", "bf16"])
def test_disaggregated_greedy_equals_offline_llm(loop, disagg, offline, mode):
    llm = offline[mode]
    results, handles = run_all(loop, disagg, [llm.tokens(p) for p in PROMPTS], mode=mode)
    assert [ids for ids, _ in results] == [o.token_ids for o in llm.generate(PROMPTS, GREEDY)]
    assert all(reason == "length" for _, reason in results)
    if mode == "mixquant":
        wait_for_kv_report(loop, handles[1])
        t = handles[1].timings
        assert t.kv_bytes > 0 and set(t.ttft_breakdown()) >= {"queue", "prefill", "transfer", "first_decode"}


def test_colocated_topology_gives_the_same_outputs(loop, engines, offline):
    orch = started(loop, engines, topology="colocated", generation_workers=1)
    try:
        llm = offline["mixquant"]
        results, _ = run_all(loop, orch, [llm.tokens(p) for p in PROMPTS])
        assert [ids for ids, _ in results] == [o.token_ids for o in llm.generate(PROMPTS, GREEDY)]
        assert orch.stats()["kv_bytes_transferred"] == 0
    finally:
        loop.run_until_complete(orch.shutdown())


def test_multi_turn_session_reuses_kv_and_matches_offline(loop, disagg, offline):
    llm = offline["mixquant"]
    history = llm.tokens("system: you are a tool-using agent. " * 8)
    before = disagg.stats()
    total_prompt = 0
    for turn in range(4):
        history += llm.tokens(f" tool output {turn}: " + "value=%d; " % (turn * 7) * 12)
        (ids, _), = run_all(loop, disagg, [history], session_id="s1")[0]
        assert ids == llm.generate(history, GREEDY)[0].token_ids
        total_prompt += len(history)
        history += ids
    after = disagg.stats()
    prefilled = after["quantized_prefill_tokens"] - before["quantized_prefill_tokens"]
    assert prefilled < 0.6 * total_prompt  # later turns prefill only what is new
    assert after["cached_prompt_tokens"] > before["cached_prompt_tokens"]


def test_streaming_cancel_and_keep_serving(loop, disagg, offline):
    llm = offline["mixquant"]

    async def go():
        handle = await submit(disagg, llm.tokens(PROMPTS[0]), SamplingParams(max_tokens=500, ignore_eos=True))
        events = []
        async for event in handle:
            events.append(event)
            if len(events) == 2:
                disagg.abort(handle.request_id)
        return events
    events = loop.run_until_complete(go())
    assert events[-1].finish_reason == "cancelled" and len(events) < 20
    (ids, _), = run_all(loop, disagg, [llm.tokens(PROMPTS[2])])[0]
    assert ids == llm.generate(PROMPTS[2], GREEDY)[0].token_ids
    assert disagg.stats()["in_flight"] == 0


def test_bad_requests_and_backpressure(loop, disagg, offline):
    llm = offline["mixquant"]

    async def go():
        with pytest.raises(ValueError, match="maximum sequence length of 2048"):
            await submit(disagg, [1] * 2100)
        with pytest.raises(ValueError, match="use --topology colocated"):
            await submit(disagg, [1, 2], mode="quantized")
        config = disagg.config
        disagg.config = replace(config, max_pending=1)
        try:
            first = await submit(disagg, llm.tokens("a"))
            with pytest.raises(Overloaded):
                await submit(disagg, llm.tokens("b"))
            return await first.result()
        finally:
            disagg.config = config
    assert loop.run_until_complete(go())[1] == "length"


def test_timeout_fails_the_request_cleanly(loop, engines, offline):
    orch = started(loop, engines, context_workers=1, generation_workers=1, request_timeout=0.3)
    try:
        async def go():
            handle = await submit(orch, offline["mixquant"].tokens("a"), SamplingParams(max_tokens=1900, ignore_eos=True))
            with pytest.raises(RequestFailed, match="timed out after 0.3 s"):
                await handle.result()
        loop.run_until_complete(go())
        assert orch.stats()["in_flight"] == 0
    finally:
        loop.run_until_complete(orch.shutdown())


def test_worker_death_fails_or_retries_and_the_rest_keep_serving(loop, engines, offline):
    llm = offline["mixquant"]
    orch = started(loop, engines, context_workers=1, generation_workers=2)
    try:
        async def go():
            # a request that is decoding when its worker dies fails with a clear error
            handle = await submit(orch, llm.tokens(PROMPTS[1]), SamplingParams(max_tokens=1900, ignore_eos=True))
            async for _ in handle:
                os.kill(orch.slots[orch.requests[handle.request_id].generation].process.processes[0].pid, signal.SIGKILL)
                break
            with pytest.raises(RequestFailed, match="died"):
                await handle.result()
            # the surviving generation worker keeps serving, with the same outputs
            survivor = await submit(orch, llm.tokens(PROMPTS[3]))
            return await survivor.result()
        ids, _ = loop.run_until_complete(go())
        assert ids == llm.generate(PROMPTS[3], GREEDY)[0].token_ids
        assert sum(w["alive"] for w in orch.stats()["workers"].values()) >= 2
    finally:
        loop.run_until_complete(orch.shutdown())


def test_request_sent_to_a_worker_that_just_died_is_retried(loop, engines, offline):
    llm = offline["mixquant"]
    orch = started(loop, engines, context_workers=1, generation_workers=2)
    try:
        victim = orch.slots["generation0"]
        os.kill(victim.process.processes[0].pid, signal.SIGKILL)
        victim.process.processes[0].join()

        async def go():
            handle = await submit(orch, llm.tokens(PROMPTS[0]))  # routed before the death is noticed
            req = orch.requests[handle.request_id]
            return await handle.result(), req.retries
        (ids, _), retries = loop.run_until_complete(go())
        assert ids == llm.generate(PROMPTS[0], GREEDY)[0].token_ids and retries == 1
    finally:
        loop.run_until_complete(orch.shutdown())
