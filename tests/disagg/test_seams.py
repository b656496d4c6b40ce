"""The orchestrator's seams: a KV transport and a way of launching workers that the package does
not know, plugged in from a test, serve the same tokens as the offline LLM."""

from __future__ import annotations

import asyncio

import pytest
import torch

from trtllm_mixquant.disagg.orchestrator import Orchestrator
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.transfer import TRANSPORTS, resolve_transport

from .test_orchestrator import GREEDY, PROMPTS, orchestrator_config, run_all
from .thread_launcher import ThreadLauncher

pytestmark = pytest.mark.slow  # real servers or worker processes


@pytest.fixture(scope="module")
def llm(tiny_engines):
    return LLM(tiny_engines("qwen3", "nvfp4"), mode="mixquant", dtype=torch.float32)


def serve_and_compare(orch: Orchestrator, llm: LLM) -> dict:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(orch.start())
        results, handles = run_all(loop, orch, [llm.tokens(p) for p in PROMPTS])
        assert [ids for ids, _ in results] == [o.token_ids for o in llm.generate(PROMPTS, GREEDY)]
        assert loop.run_until_complete(orch.check_blocks()) == dict.fromkeys(orch.slots)
        return {"kv_bytes": handles[1].timings.kv_bytes}
    finally:
        loop.run_until_complete(orch.shutdown())
        loop.close()


def test_a_transport_registered_from_a_test_reaches_the_worker_processes(tiny_engines, llm):
    TRANSPORTS.register("files", "tests.transfer.file_transport:FileKVTransport")
    assert resolve_transport("files") == "tests.transfer.file_transport:FileKVTransport"
    orch = Orchestrator(orchestrator_config(tiny_engines("qwen3", "nvfp4"), kv_transport="files"))
    assert {s.transport for s in orch.worker_specs()} == {"tests.transfer.file_transport:FileKVTransport"}
    assert serve_and_compare(orch, llm)["kv_bytes"] > 0


@pytest.mark.parametrize("topology", ["disaggregated", "colocated"])
def test_workers_started_by_another_launcher_over_another_channel(tiny_engines, llm, topology):
    launcher = ThreadLauncher()
    orch = Orchestrator(orchestrator_config(tiny_engines("qwen3", "nvfp4"), topology=topology), launcher=launcher)
    serve_and_compare(orch, llm)
    assert len(launcher.launched) == (2 if topology == "disaggregated" else 1)
