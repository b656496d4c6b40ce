"""NVIDIA Dynamo's own frontend and our workers as separate processes on loopback (file discovery),
driven with the official `openai` client."""

from __future__ import annotations

import pytest

pytest.importorskip("dynamo.frontend")
pytest.importorskip("nixl")

from trtllm_mixquant.dynamo.local import LocalGraph  # noqa: E402

WORKER_ARGS = ("--dtype", "float32", "--device", "cpu")  # fp32: token for token with the offline LLM
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # several processes share the test machine's cores


def start_graph(engine_dir, folder, extra_worker_args=(), **kw) -> LocalGraph:
    graph = LocalGraph(engine_dir, folder, worker_args=WORKER_ARGS + tuple(extra_worker_args), extra_env=ONE_THREAD,
                       **kw).start()
    try:
        graph.wait_ready()
    except Exception:
        graph.stop()
        raise
    return graph


def client(graph: LocalGraph):
    import openai

    return openai.OpenAI(base_url=graph.url + "/v1", api_key="unused", max_retries=0, timeout=120)
