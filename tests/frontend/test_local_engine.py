"""The in-process `AsyncEngine`: the same greedy tokens as the offline `LLM` and as the HTTP server
serving it; streaming, stop strings, aborts that free the KV, and errors of the domain."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from tests.server.conftest import wait_healthy
from trtllm_mixquant.ports import free_port
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.errors import InvalidRequest, Overloaded
from trtllm_mixquant.frontend.async_engine import GenerateRequest
from trtllm_mixquant.frontend.generation import TextGeneration
from trtllm_mixquant.frontend.local_engine import LocalEngine

PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 3, "a", "xyz" * 30]
GREEDY = SamplingParams(max_tokens=8, ignore_eos=True)


@pytest.fixture(scope="module")
def engines(tiny_engines):
    return tiny_engines("qwen3", "nvfp4")


@pytest.fixture(scope="module")
def llm(engines):
    return LLM(engines, mode="mixquant", dtype=torch.float32)


@pytest.fixture(scope="module")
def local(engines):
    """A LocalEngine running in an event loop of its own thread (as a Triton model would hold it)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    engine = LocalEngine(EngineConfig(engines, dtype="float32", device="cpu"), max_pending=8)
    asyncio.run_coroutine_threadsafe(engine.start(), loop).result(120)

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(120)
    yield engine, run
    run(engine.shutdown())
    loop.call_soon_threadsafe(loop.stop)


def test_streams_the_offline_llms_greedy_tokens(local, llm):
    engine, run = local

    async def go():
        streams = [await engine.submit(GenerateRequest(llm.tokens(p), GREEDY)) for p in PROMPTS]
        events = [[e async for e in s] for s in streams]
        return events
    events = run(go())
    expected = llm.generate(PROMPTS, GREEDY)
    assert [[t for e in ev for t in e.token_ids] for ev in events] == [o.token_ids for o in expected]
    assert all(len(ev) == 8 and ev[-1].finish_reason == "length" for ev in events)  # one event per token


def test_text_generation_applies_stop_strings_and_frees_the_kv(local, llm):
    engine, run = local
    whole = llm.generate(PROMPTS[1], SamplingParams(max_tokens=12, ignore_eos=True))[0]
    stop = whole.text[3:6]
    params = SamplingParams(max_tokens=12, ignore_eos=True, stop=[stop])

    async def go():
        gen = await TextGeneration.start(engine, GenerateRequest(llm.tokens(PROMPTS[1]), params))
        return await gen.text(), gen.finish_reason
    text, reason = run(go())
    assert (text, reason) == (whole.text[:whole.text.index(stop)], "stop")
    assert (text, reason) == (llm.generate(PROMPTS[1], params)[0].text, llm.generate(PROMPTS[1], params)[0].finish_reason)
    wait_until_free(engine)


def test_abort_frees_the_kv_and_errors_are_the_domains(local, llm):
    engine, run = local

    async def go():
        stream = await engine.submit(GenerateRequest(llm.tokens("a"), SamplingParams(max_tokens=1500, ignore_eos=True)))
        async for _ in stream:
            engine.abort(stream.request_id)
        with pytest.raises(InvalidRequest, match="maximum sequence length of 2048"):
            await engine.submit(GenerateRequest([1] * 2100, GREEDY))
        with pytest.raises(InvalidRequest, match="mode must be one of"):
            await engine.submit(GenerateRequest([1], GREEDY, mode="fp4"))
        streams = [await engine.submit(GenerateRequest([1, 2], GREEDY)) for _ in range(8)]
        with pytest.raises(Overloaded):
            await engine.submit(GenerateRequest([1, 2], GREEDY))
        return [await s.result() for s in streams]
    assert all(reason == "length" for _, reason in run(go()))
    wait_until_free(engine)


def wait_until_free(engine, timeout=10.0):
    deadline = time.monotonic() + timeout
    while (usage := engine.stats()["workers"]["local"]["usage"]).free != usage.total:
        assert time.monotonic() < deadline, f"blocks still held: {usage}"
        time.sleep(0.02)
    engine.backend.check_blocks()


def test_the_http_server_over_it_gives_the_same_text(engines, llm):
    import openai
    import uvicorn

    from trtllm_mixquant.disagg.config import OrchestratorConfig
    from trtllm_mixquant.server.app import create_app
    from trtllm_mixquant.server.config import ServerConfig

    engine_config = EngineConfig(engines, dtype="float32", device="cpu")
    config = ServerConfig(OrchestratorConfig(engine_config), port=free_port())
    uv = uvicorn.Server(uvicorn.Config(create_app(config, engine=LocalEngine(engine_config)), port=config.port,
                                       log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{config.port}"
        wait_healthy(url)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        for prompt, out in zip(PROMPTS, llm.generate(PROMPTS, GREEDY)):
            r = client.completions.create(model=config.model_name, prompt=prompt, max_tokens=8, temperature=0,
                                          extra_body={"ignore_eos": True})
            assert r.choices[0].text == out.text
    finally:
        uv.should_exit = True
        thread.join(30)
