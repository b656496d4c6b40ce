"""The server through the official `openai` client: greedy results equal the offline `LLM`, streaming
adds up to the whole reply, 32 concurrent requests, metrics, and cancellation of abandoned requests."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import torch

from tests.server.conftest import API_KEY, http, metric
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.frontend.detokenizer import hidden_token_ids

pytestmark = pytest.mark.slow  # real servers or worker processes

openai = pytest.importorskip("openai")
pytest.importorskip("nixl")
PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 3, "a", "xyz" * 30]
GREEDY = dict(temperature=0, extra_body={"ignore_eos": True})


@pytest.fixture(scope="module")
def offline(server):
    return {mode: LLM(server.engine_dir, mode=mode, dtype=torch.float32) for mode in ("mixquant", "bf16")}


def visible_text(llm: LLM, ids: list[int]) -> str:
    hidden = hidden_token_ids(llm.tokenizer)
    return llm.tokenizer.decode([i for i in ids if i not in hidden])


def wait_idle(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while metric(url, "mixquant_requests_in_flight ") != 0:
        assert time.monotonic() < deadline, "a request was not cancelled"
        time.sleep(0.05)


def test_models_health_and_503_while_starting(server):
    assert server.statuses_while_starting == (503, 503)
    assert [m.id for m in server.client().models.list()] == [server.model]
    assert http("GET", server.url + "/health") == (200, '{"status":"ok"}')


@pytest.mark.parametrize("mode", ["mixquant", "bf16"])
def test_greedy_completions_equal_the_offline_llm(server, offline, mode):
    client, llm = server.client(), offline[mode]
    expected = llm.generate(PROMPTS, SamplingParams(max_tokens=8, ignore_eos=True))
    for prompt, out in zip(PROMPTS, expected):
        r = client.completions.create(model=server.model, prompt=prompt, max_tokens=8, temperature=0,
                                      extra_body={"ignore_eos": True, "mixquant": {"mode": mode}})
        assert r.choices[0].text == visible_text(llm, out.token_ids)
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (len(llm.tokens(prompt)), 8)
        assert r.choices[0].finish_reason == "length" and r.model == server.model


def test_chat_uses_the_chat_template_like_the_offline_llm(server, offline):
    llm = offline["mixquant"]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there!"}]
    out = llm.chat(messages, params=SamplingParams(max_tokens=6, ignore_eos=True))
    r = server.client().chat.completions.create(model=server.engine_dir.as_posix(), messages=messages,
                                                max_completion_tokens=6, **GREEDY)
    prompt = llm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert r.usage.prompt_tokens == len(llm.tokens(prompt)) and r.usage.completion_tokens == 6
    text = visible_text(llm, out.token_ids)
    assert "<" not in text  # (no tags for the parser in this reply, so the content is the raw text)
    assert r.choices[0].message.content == text and r.choices[0].message.role == "assistant"


def test_streaming_adds_up_to_the_whole_reply(server):
    client = server.client()
    kw = dict(model=server.model, max_tokens=40, **GREEDY)
    whole = client.completions.create(prompt=PROMPTS[1], **kw)
    chunks = list(client.completions.create(prompt=PROMPTS[1], stream=True, stream_options={"include_usage": True},
                                            **kw))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-2].choices[0].finish_reason == "length" and chunks[-1].usage == whole.usage

    messages = [{"role": "user", "content": PROMPTS[0]}]
    whole = client.chat.completions.create(messages=messages, **kw)
    chunks = list(client.chat.completions.create(messages=messages, stream=True, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"


def test_seeded_sampling_is_reproducible_and_stop_strings_cut_the_text(server):
    client = server.client()
    kw = dict(model=server.model, prompt=PROMPTS[0], max_tokens=20, temperature=1.0, top_p=0.9,
              extra_body={"top_k": 50})
    first, second = (client.completions.create(seed=7, **kw).choices[0].text for _ in range(2))
    assert first == second
    # a random model writes arbitrary bytes: take a stop string from the first reply with clean text
    texts = {p: client.completions.create(model=server.model, prompt=p, max_tokens=30, **GREEDY).choices[0].text
             for p in PROMPTS}
    prompt, text, stop = next((p, t, t[i:i + 2]) for p, t in texts.items() for i in range(5, len(t) - 1)
                              if "\ufffd" not in t[i:i + 2])
    for stream in (False, True):
        r = client.completions.create(model=server.model, prompt=prompt, max_tokens=30, stop=[stop], stream=stream,
                                      **GREEDY)
        got = "".join(c.choices[0].text for c in r) if stream else r.choices[0].text
        assert got == text[:text.index(stop)]


def test_32_concurrent_requests(server, offline):
    llm = offline["mixquant"]
    prompts = [f"request {i}: " + "abc " * (i % 9) for i in range(32)]

    async def run():
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
        calls = [client.completions.create(model=server.model, prompt=p, max_tokens=6, **GREEDY) for p in prompts]
        return await asyncio.gather(*calls)
    replies = asyncio.run(run())
    expected = llm.generate(prompts, SamplingParams(max_tokens=6, ignore_eos=True))
    assert [r.choices[0].text for r in replies] == [visible_text(llm, o.token_ids) for o in expected]


def test_a_client_that_disconnects_cancels_its_request(server):
    cancelled = metric(server.url, 'mixquant_requests_total{endpoint="/v1/completions",status="cancelled"}')
    stream = server.client().completions.create(model=server.model, prompt="a", max_tokens=1900, stream=True, **GREEDY)
    next(iter(stream))
    stream.close()
    wait_idle(server.url)
    # the same without streaming: the client goes away while it waits for the whole reply
    body = json.dumps({"model": server.model, "prompt": "a", "max_tokens": 1900, "ignore_eos": True}).encode()
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + API_KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        deadline = time.monotonic() + 10
        while metric(server.url, "mixquant_requests_in_flight ") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    wait_idle(server.url)
    assert metric(server.url, 'mixquant_requests_total{endpoint="/v1/completions",status="cancelled"}') == cancelled + 2


def test_metrics(server):
    server.client().completions.create(model=server.model, prompt=PROMPTS[1], max_tokens=3, **GREEDY)
    text = http("GET", server.url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"})[1]
    for name in ("mixquant_requests_in_flight ", "mixquant_time_to_first_token_seconds_bucket{le=\"+Inf\"}",
                 "mixquant_inter_token_latency_seconds_count", "mixquant_kv_transfer_bytes_total",
                 'mixquant_prompt_tokens_total{precision="nvfp4"}', 'mixquant_prompt_tokens_total{precision="bf16"}',
                 "mixquant_generation_tokens_total", 'mixquant_workers_alive{role="context"} 1'):
        assert name in text
    assert metric(server.url, "mixquant_kv_transfer_bytes_total") > 0
    assert metric(server.url, 'mixquant_prompt_tokens_total{precision="nvfp4"}') > metric(
        server.url, 'mixquant_prompt_tokens_total{precision="bf16"}') > 0
