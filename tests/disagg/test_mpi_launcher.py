"""Workers started as MPI jobs (`mpirun -n TP`, the MPICH wheel from PyPI, mpi4py ranks): a
tensor-parallel generation worker serves the tokens of one rank, and a rank that dies takes its job
down, which the orchestrator sees as one dead worker and replaces."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import psutil
import pytest
import torch

from trtllm_mixquant.disagg.orchestrator import Orchestrator
from trtllm_mixquant.engine.llm import LLM

from .test_orchestrator import GREEDY, PROMPTS, orchestrator_config, run_all

pytestmark = pytest.mark.slow  # MPI jobs
pytest.importorskip("nixl")
pytest.importorskip("mpi4py")


def test_mpi_workers_serve_and_a_dead_rank_is_one_dead_worker(loop, engines):
    from trtllm_mixquant.disagg.mpi_launcher import find_mpirun

    find_mpirun()
    llm = LLM(engines, dtype=torch.float32)
    prompts, tokens = [llm.tokens(p) for p in PROMPTS], [o.token_ids for o in llm.generate(PROMPTS, GREEDY)]
    orch = Orchestrator(orchestrator_config(engines, kv_transport="nixl", launcher="mpi", tensor_parallel_size=2,
                                            context_tensor_parallel_size=1))
    loop.run_until_complete(orch.start())
    try:
        results, _ = run_all(loop, orch, prompts)
        assert [ids for ids, _ in results] == tokens

        job = psutil.Process(orch.slots["generation0"].process.job.pid)  # mpirun
        ranks = [p for p in job.children(recursive=True) if "trtllm_mixquant.disagg.mpi_launcher" in " ".join(p.cmdline())]
        assert len(ranks) == 2
        os.kill(ranks[-1].pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while orch.counters.restarts == 0 and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(0.1))
        assert orch.counters.restarts == 1 and not job.is_running()  # one dead worker: the whole job ended
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in ranks)
        while not orch.slots["generation0"].ready and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(0.1))
        results, _ = run_all(loop, orch, prompts)
        assert [ids for ids, _ in results] == tokens
    finally:
        loop.run_until_complete(orch.shutdown())
