"""Tensor-parallel workers under the orchestrator (CPU, gloo, fp32): a context pool and a generation
pool of different tensor-parallel sizes give the tokens of TP 1 / TP 1, with KV moved head by head
through NIXL and through torch.distributed; a rank that dies takes its worker down as one."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import torch

from trtllm_mixquant.disagg.orchestrator import Orchestrator
from trtllm_mixquant.engine.llm import LLM

from .test_orchestrator import GREEDY, PROMPTS, orchestrator_config, run_all, wait_for_kv_report

pytestmark = pytest.mark.slow  # worker processes


@pytest.fixture(scope="module")
def expected(engines):
    llm = LLM(engines, dtype=torch.float32)
    return [llm.tokens(p) for p in PROMPTS], [o.token_ids for o in llm.generate(PROMPTS, GREEDY)]


@pytest.mark.parametrize("transport", ["nixl", "torch"])
@pytest.mark.parametrize("context_tp, generation_tp", [(2, 1), (1, 2)])
def test_pools_of_different_sizes_give_the_tokens_of_one_rank(loop, engines, expected, transport, context_tp,
                                                             generation_tp):
    """Then (once) a generation rank is killed: its whole group goes down, and the supervisor sees one
    dead worker (replacing it is the orchestrator's usual path, tested with MPI jobs in test_mpi_launcher)."""
    if transport == "nixl":
        pytest.importorskip("nixl")
    prompts, tokens = expected
    kill = (transport, generation_tp) == ("nixl", 2)
    orch = Orchestrator(orchestrator_config(engines, kv_transport=transport, tensor_parallel_size=generation_tp,
                                            context_tensor_parallel_size=context_tp, max_restarts=0))
    loop.run_until_complete(orch.start())
    try:
        results, handles = run_all(loop, orch, prompts, mode="mixquant")
        assert [ids for ids, _ in results] == tokens
        wait_for_kv_report(loop, handles[1])  # the context side's report may come after the last token
        assert orch.stats()["kv_bytes_transferred"] > 0
        assert all(error is None for error in loop.run_until_complete(orch.check_blocks()).values())
        if kill:
            slot = orch.slots["generation0"]
            rank0, rank1 = slot.process.processes
            os.kill(rank1.pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while slot.alive and time.monotonic() < deadline:
                loop.run_until_complete(asyncio.sleep(0.1))
            rank0.join(10)
            assert not slot.alive and not rank0.is_alive()
            assert orch.health()[1]["down"] == ["generation0"] and orch.slots["context0"].alive
    finally:
        loop.run_until_complete(orch.shutdown())
