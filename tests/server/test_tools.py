"""Tool calls, reasoning and stop strings end to end, on a model whose greedy reply is scripted
(scripted_model.py), served by the `trtllm-mixquant serve` command (colocated, 4 requests in flight at
most); ends with a graceful SIGTERM shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.server.conftest import wait_healthy
from trtllm_mixquant.ports import free_port
from tests.server.scripted_model import CALL, write_scripted_model
from trtllm_mixquant.builder.pipeline import BuildOptions, build_engines

pytestmark = pytest.mark.slow  # real servers or worker processes

openai = pytest.importorskip("openai")
pytest.importorskip("nixl")
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": CITY}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
PARIS = {"city": "Paris"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("scripted")
    model = write_scripted_model(root / "model")
    engines = root / "scripted-agent"
    build_engines(BuildOptions(model=model, output=engines, context_precision="nvfp4", calib_samples=4,
                               calib_seq_len=64))
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "trtllm_mixquant.cli", "serve", str(engines), "--port", str(port),
                             "--topology", "colocated", "--generation-workers", "1", "--max-pending", "4"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
        yield proc, client, engines
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def call_of(message) -> tuple[str, dict]:
    (call,) = message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    return call.function.name, json.loads(call.function.arguments)


def test_auto_tool_choice_returns_reasoning_and_a_parsed_call(served):
    _, client, _ = served
    r = client.chat.completions.create(model="scripted-agent", messages=ASK, tools=TOOLS, temperature=0)
    message = r.choices[0].message
    assert call_of(message) == ("get_weather", PARIS) and r.choices[0].finish_reason == "tool_calls"
    assert message.content is None and message.model_extra["reasoning_content"] == "hm"


def test_streamed_tool_call_deltas(served):
    _, client, _ = served
    chunks = list(client.chat.completions.create(model="scripted-agent", messages=ASK, tools=TOOLS, temperature=0,
                                                 stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == "hm"
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert [(c.index, c.function.name, json.loads(c.function.arguments)) for c in calls] == [(0, "get_weather", PARIS)]
    assert not any(d.content for d in deltas) and chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_required_and_named_tool_choice_force_a_call(served, choice):
    _, client, _ = served
    r = client.chat.completions.create(model="scripted-agent", messages=ASK, tools=TOOLS, tool_choice=choice,
                                       temperature=0)
    assert call_of(r.choices[0].message) == ("get_weather", PARIS)
    # the grammar lets the model reason first, then holds it to one call: it writes the whole reply
    assert r.choices[0].message.model_extra["reasoning_content"] == "hm" and r.usage.completion_tokens == 8


def test_tool_choice_none_leaves_the_call_in_the_content(served):
    _, client, _ = served
    r = client.chat.completions.create(model="scripted-agent", messages=ASK, tools=TOOLS, tool_choice="none",
                                       temperature=0)
    message = r.choices[0].message
    assert not message.tool_calls and message.content.startswith("<tool_call>") and r.choices[0].finish_reason == "stop"


def test_a_tool_result_turn_renders_through_the_template(served):
    _, client, engines = served
    first = client.chat.completions.create(model="scripted-agent", messages=ASK, tools=TOOLS, temperature=0)
    call = first.choices[0].message.tool_calls[0]
    history = ASK + [{"role": "assistant", "content": "", "tool_calls": [call.model_dump()]},
                     {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"}]
    r = client.chat.completions.create(model="scripted-agent", messages=history, tools=TOOLS, temperature=0)
    assert r.choices[0].finish_reason == "tool_calls"
    # what the template saw: the call with its arguments as a dict, and the tool result
    expected = ASK + [{"role": "assistant", "content": "", "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": PARIS}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny", "name": "get_weather"}]
    tokenizer = AutoTokenizer.from_pretrained(engines / "generation")
    text = tokenizer.apply_chat_template(expected, tools=TOOLS, add_generation_prompt=True, tokenize=False)
    assert '"arguments": {"city": "Paris"}}\n</tool_call>' in text and "18 degrees and sunny" in text
    assert r.usage.prompt_tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("stop,text", [("</think>", "<think>hm"), ("<tool", "<think>hm</think>"), ("zzz", None)])
def test_stop_strings_over_special_tokens(served, stop, text):
    _, client, _ = served
    full = "<think>hm</think><tool_call>" + CALL + "</tool_call>"
    for stream in (False, True):
        r = client.completions.create(model="scripted-agent", prompt="go\n", max_tokens=20, stop=[stop], stream=stream,
                                      temperature=0, extra_body={"mixquant": {"mode": "quantized"}})
        chunks = list(r) if stream else [r]
        assert "".join(c.choices[0].text for c in chunks) == (text or full)
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_queue_full_is_429_and_closed_streams_free_their_slots(served):
    _, client, _ = served
    long = dict(model="scripted-agent", prompt="go\n", max_tokens=1500, temperature=0, stream=True,
                extra_body={"ignore_eos": True})
    streams = [client.completions.create(**long) for _ in range(4)]
    for s in streams:
        next(iter(s))
    with pytest.raises(openai.RateLimitError) as e:
        client.completions.create(**{**long, "stream": False})
    assert e.value.response.json()["error"]["code"] == "queue_full"
    for s in streams:
        s.close()
    r = None
    for _ in range(100):  # the server notices the disconnections within a moment
        try:
            r = client.completions.create(model="scripted-agent", prompt="go\n", max_tokens=2, temperature=0)
            break
        except openai.RateLimitError:
            time.sleep(0.05)
    assert r is not None and r.choices[0].text == "<think>h"


def test_sigterm_lets_the_request_in_flight_finish_then_stops_the_workers(served):
    proc, client, _ = served
    stream = client.completions.create(model="scripted-agent", prompt="go\n", max_tokens=300, temperature=0,
                                       stream=True, extra_body={"ignore_eos": True})
    first = next(iter(stream))
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert workers
    proc.send_signal(signal.SIGTERM)
    rest = list(stream)
    assert rest[-1].choices[0].finish_reason == "length" and first.choices[0].text
    assert proc.wait(60) in (0, -signal.SIGTERM)
    for _ in range(100):
        if not any(Path(f"/proc/{pid}").exists() for pid in workers):
            break
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
