"""The orchestrator with the torch.distributed (gloo) KV transport, the fallback where NIXL is missing."""

from __future__ import annotations

import asyncio

import pytest
import torch

from trtllm_mixquant.disagg.orchestrator import Orchestrator
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.transfer import resolve_transport

from .test_orchestrator import GREEDY, PROMPTS, orchestrator_config, run_all, submit, wait_for_kv_report

pytestmark = pytest.mark.slow  # real servers or worker processes


@pytest.fixture(scope="module")
def orchestrator(tiny_engines):
    loop = asyncio.new_event_loop()
    orch = Orchestrator(orchestrator_config(tiny_engines("qwen3", "nvfp4"), kv_transport="torch"))
    loop.run_until_complete(orch.start())
    yield loop, orch
    loop.run_until_complete(orch.shutdown())
    loop.close()


def test_greedy_equals_offline_and_sessions_reuse_kv(orchestrator, tiny_engines):
    loop, orch = orchestrator
    llm = LLM(tiny_engines("qwen3", "nvfp4"), mode="mixquant", dtype=torch.float32)
    results, handles = run_all(loop, orch, [llm.tokens(p) for p in PROMPTS])
    assert [ids for ids, _ in results] == [o.token_ids for o in llm.generate(PROMPTS, GREEDY)]
    wait_for_kv_report(loop, handles[1])
    assert handles[1].timings.kv_bytes > 0
    history = llm.tokens("system: agent. " * 20)
    for turn in range(3):
        history += llm.tokens(f" tool {turn}: " + "x=1; " * 30)
        (ids, _), = run_all(loop, orch, [history], session_id="s")[0]
        assert ids == llm.generate(history, GREEDY)[0].token_ids
        history += ids
    assert orch.stats()["cached_prompt_tokens"] > 0


def test_cancelled_prefill_does_not_wedge_the_transport(orchestrator, tiny_engines):
    loop, orch = orchestrator
    llm = LLM(tiny_engines("qwen3", "nvfp4"), mode="mixquant", dtype=torch.float32)

    async def go():
        handle = await submit(orch, llm.tokens(PROMPTS[3]), SamplingParams(max_tokens=200, ignore_eos=True))
        orch.abort(handle.request_id)
        return await handle.result()
    assert loop.run_until_complete(go())[1] == "cancelled"
    (ids, _), = run_all(loop, orch, [llm.tokens(PROMPTS[0])])[0]
    assert ids == llm.generate(PROMPTS[0], GREEDY)[0].token_ids


def test_transport_choice_is_validated():
    assert resolve_transport("torch") == "trtllm_mixquant.transfer.torch_dist:TorchDistKVTransport"
    with pytest.raises(ValueError, match="unknown KV transport 'rdma'; registered: .*nixl, torch"):
        resolve_transport("rdma")
