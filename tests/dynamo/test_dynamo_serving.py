"""Our engines behind NVIDIA Dynamo: Dynamo's frontend, two context (prefill) workers and one
generation (decode) worker, each its own process, tiny random engines in fp32. Greedy output equals
the offline `LLM` token for token in both precisions, the KV-aware router sends a conversation's
next turn to the context worker that holds its first, and a killed generation worker fails only its
requests and is picked up again once restarted. The last test kills and restarts a worker."""

from __future__ import annotations

import time

import pytest

from tests.dynamo.conftest import client, start_graph
from trtllm_mixquant.dynamo.local import get
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams

pytestmark = pytest.mark.slow  # real servers or worker processes
openai = pytest.importorskip("openai")

PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 6, "ab"]
CHATS = [[{"role": "user", "content": "What is the capital of France?"}],
         [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Count to five " * 8}]]
MAX_TOKENS = 12


def mode(name: str) -> dict:
    """How a client picks a request's precision through Dynamo's frontend (and asks for the token
    ids and mode the generation worker reports in `nvext.engine_data`)."""
    return {"nvext": {"annotations": [f"mode:{name}"], "extra_fields": ["engine_data"]}}


def engine_data(response) -> dict:
    return response.model_extra["nvext"]["engine_data"]


@pytest.fixture(scope="module")
def engines(tiny_engines):
    return tiny_engines("qwen3", "nvfp4")


@pytest.fixture(scope="module")
def graph(engines, tmp_path_factory):
    graph = start_graph(engines, tmp_path_factory.mktemp("dynamo"), context_workers=2, generation_workers=1)
    yield graph
    graph.stop()


@pytest.fixture(scope="module")
def llm(engines):
    return LLM(engines, mode="mixquant", dtype="float32", device="cpu")


def totals(graph, role: str, name: str) -> float:
    return sum(p.metrics().get(name, 0.0) for p in graph.workers(role))


def stored_blocks_indexed(graph) -> float:
    """Stored-block KV events the frontend's router has applied to its index (its own counter, one
    event a block as our context workers publish them)."""
    lines = get(graph.url + "/metrics")[1].splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(
        "dynamo_component_kv_cache_events_applied{") and 'event_type="stored"' in line and 'status="ok"' in line)


def wait_idle(graph, timeout: float = 10.0) -> None:
    """Every worker's blocks free again (prefilled KV released, reservations gone)."""
    end = time.monotonic() + timeout
    while any(p.metrics().get(f"mixquant_kv_blocks:{s}", 0) for p in graph.workers("context") +
              graph.workers("generation") for s in ("used", "reserved")):
        assert time.monotonic() < end, {p.name: p.metrics() for p in graph.workers("context")}
        time.sleep(0.1)


@pytest.mark.parametrize("precision", ["mixquant", "bf16"])
def test_greedy_completions_equal_the_llm_token_for_token(graph, llm, precision):
    c = client(graph)
    computed = totals(graph, "context", "mixquant_computed_prompt_tokens_total")
    for prompt in PROMPTS:
        want = llm.generate(prompt, SamplingParams(max_tokens=MAX_TOKENS, ignore_eos=True), mode=precision)[0]
        r = c.completions.create(model=graph.engine_dir.name, prompt=prompt, max_tokens=MAX_TOKENS, temperature=0,
                                 extra_body={"ignore_eos": True, **mode(precision)})
        assert engine_data(r) == {"token_ids": want.token_ids, "mode": precision}
        assert r.usage.completion_tokens == MAX_TOKENS and r.usage.prompt_tokens == len(want.prompt_token_ids)
        streamed = list(c.completions.create(model=graph.engine_dir.name, prompt=prompt, max_tokens=MAX_TOKENS,
                                             temperature=0, stream=True,
                                             extra_body={"ignore_eos": True, **mode(precision)}))
        assert engine_data(streamed[-1])["token_ids"] == want.token_ids
        assert "".join(chunk.choices[0].text for chunk in streamed if chunk.choices) == r.choices[0].text
    # mixquant prefills its quantized part on a context worker; bf16 leaves the context workers idle
    assert (totals(graph, "context", "mixquant_computed_prompt_tokens_total") > computed) == (precision == "mixquant")
    wait_idle(graph)


@pytest.mark.parametrize("precision", ["mixquant", "bf16"])
def test_greedy_chat_equals_the_llm(graph, llm, precision):
    c = client(graph)
    for messages in CHATS:
        want = llm.chat(messages, params=SamplingParams(max_tokens=MAX_TOKENS), mode=precision)
        r = c.chat.completions.create(model=graph.engine_dir.name, messages=messages, max_tokens=MAX_TOKENS,
                                      temperature=0, extra_body=mode(precision))
        assert engine_data(r)["token_ids"] == want.token_ids and r.usage.prompt_tokens == len(want.prompt_token_ids)
        assert r.choices[0].finish_reason == want.finish_reason


@pytest.mark.parametrize("body, message", [
    ({"max_tokens": 100_000}, "exceeds the engine's maximum sequence length"),
    ({"logprobs": 2}, "`logprobs`=2 is not supported"),
    (mode("quantized"), "mode 'quantized' decodes with the quantized weights"),
    (mode("fp2"), "mode must be one of mixquant, bf16, quantized"),
])
def test_bad_requests_get_clear_400s_and_hold_no_kv(graph, body, message):
    c = client(graph)
    with pytest.raises(openai.BadRequestError, match=message):
        c.completions.create(model=graph.engine_dir.name, prompt=PROMPTS[1], extra_body=body,
                             **({} if "max_tokens" in body else {"max_tokens": 4}))
    wait_idle(graph)  # a request refused after its prefill had its KV released at once, not after hold_seconds


def test_a_stream_the_client_drops_frees_its_blocks(graph):
    c = client(graph)
    stream = c.completions.create(model=graph.engine_dir.name, prompt=PROMPTS[1], max_tokens=1500, stream=True,
                                  extra_body={"ignore_eos": True})
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    wait_idle(graph, timeout=30)


def test_the_next_turn_goes_to_the_context_worker_holding_the_first(graph, llm):
    """KV events: each context worker publishes the blocks it caches; Dynamo's router sends the
    second turn to the worker that prefilled the first, which prefills only the new tokens."""
    c = client(graph)
    for session in range(3):
        messages = [{"role": "system", "content": f"Session {session}. " + "Remember these notes. " * 20},
                    {"role": "user", "content": "first question " * 4}]
        before = {p.name: p.metrics() for p in graph.workers("context")}
        indexed = stored_blocks_indexed(graph)
        first = c.chat.completions.create(model=graph.engine_dir.name, messages=messages, max_tokens=8, temperature=0)
        after_first = {p.name: p.metrics() for p in graph.workers("context")}
        (holder,) = [n for n in before if after_first[n].get("mixquant_requests_total:prefilled", 0) >
                     before[n].get("mixquant_requests_total:prefilled", 0)]
        block = 32
        full_blocks = (first.usage.prompt_tokens - 1) // block  # what the context worker computed and published
        deadline = time.monotonic() + 30
        while stored_blocks_indexed(graph) < indexed + full_blocks:  # its events have reached the router
            assert time.monotonic() < deadline, "the router never indexed the first turn's blocks"
            time.sleep(0.1)
        messages += [{"role": "assistant", "content": first.choices[0].message.content},
                     {"role": "user", "content": "and a second one"}]
        second = c.chat.completions.create(model=graph.engine_dir.name, messages=messages, max_tokens=8,
                                           temperature=0, extra_body=mode("mixquant"))
        after = {p.name: p.metrics() for p in graph.workers("context")}
        served = [n for n in before if after[n].get("mixquant_requests_total:prefilled", 0) >
                  after_first[n].get("mixquant_requests_total:prefilled", 0)]
        assert served == [holder], (session, holder, served)
        prompt = second.usage.prompt_tokens
        cached = after[holder]["mixquant_cached_prompt_tokens_total"] - after_first[holder].get(
            "mixquant_cached_prompt_tokens_total", 0)
        computed = after[holder]["mixquant_computed_prompt_tokens_total"] - after_first[holder].get(
            "mixquant_computed_prompt_tokens_total", 0)
        assert cached >= full_blocks * block > 0  # the first turn's full blocks
        assert cached + computed == prompt - 1  # only the new tokens were prefilled (all but the last, k=1)
        want = llm.chat(messages, params=SamplingParams(max_tokens=8))
        assert engine_data(second)["token_ids"] == want.token_ids


def test_a_killed_generation_worker_fails_only_its_requests_and_a_restarted_one_is_used(graph, llm):
    c = client(graph)
    stream = c.completions.create(model=graph.engine_dir.name, prompt=PROMPTS[0], max_tokens=1800, stream=True,
                                  extra_body={"ignore_eos": True})
    received, start = 0, time.monotonic()
    with pytest.raises((openai.APIError, openai.APIConnectionError)):
        for chunk in stream:
            received += 1
            if received == 5:
                graph.kill("generation0")
    assert received >= 5 and time.monotonic() - start < 60  # ended with an error, did not hang

    down = time.monotonic()
    with pytest.raises((openai.APIStatusError, openai.APIConnectionError)):  # no generation worker: a clean error
        c.completions.create(model=graph.engine_dir.name, prompt=PROMPTS[0], max_tokens=4)
    assert time.monotonic() - down < 60
    assert all(p.alive() for p in graph.workers("context"))  # the context workers are untouched

    graph.start_worker("generation0")
    graph.wait_ready()
    want = llm.generate(PROMPTS[0], SamplingParams(max_tokens=MAX_TOKENS, ignore_eos=True))[0]
    deadline = time.monotonic() + 60
    while True:  # the frontend may still route to the dead instance until discovery drops it
        try:
            r = c.completions.create(model=graph.engine_dir.name, prompt=PROMPTS[0], max_tokens=MAX_TOKENS,
                                     temperature=0, extra_body={"ignore_eos": True, **mode("mixquant")})
            break
        except openai.APIError:
            assert time.monotonic() < deadline, "the restarted generation worker was never used"
            time.sleep(0.5)
    assert engine_data(r)["token_ids"] == want.token_ids
    wait_idle(graph)
