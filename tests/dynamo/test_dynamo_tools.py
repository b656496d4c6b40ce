"""Tool calls and reasoning through Dynamo's frontend (its hermes and qwen3 parsers) on a model whose
greedy reply is scripted, and a graceful SIGTERM: the generation worker finishes the stream it is
serving, then exits."""

from __future__ import annotations

import json
import signal
import threading

import pytest

from tests.dynamo.conftest import client, start_graph
from tests.server.scripted_model import write_scripted_model
from tests.server.test_tools import ASK, PARIS, TOOLS
from trtllm_mixquant.builder.pipeline import BuildOptions, build_engines

pytestmark = pytest.mark.slow  # real servers or worker processes
openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("scripted-dynamo")
    engines = root / "scripted-agent"
    build_engines(BuildOptions(model=write_scripted_model(root / "model"), output=engines, context_precision="nvfp4",
                               calib_samples=4, calib_seq_len=64))
    graph = start_graph(engines, root / "graph", extra_worker_args=("--reasoning-parser", "qwen3"))
    yield graph
    graph.stop()


def test_a_tool_call_and_its_reasoning_are_parsed(graph):
    r = client(graph).chat.completions.create(model="scripted-agent", messages=ASK, tools=TOOLS, temperature=0)
    message = r.choices[0].message
    (call,) = message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", PARIS)
    assert r.choices[0].finish_reason == "tool_calls"
    assert not message.content and message.model_extra["reasoning_content"] == "hm"


def test_streamed_tool_call_deltas(graph):
    chunks = list(client(graph).chat.completions.create(model="scripted-agent", messages=ASK, tools=TOOLS,
                                                        temperature=0, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == "hm"
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("get_weather", PARIS)]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_sigterm_lets_the_generation_worker_finish_its_stream_then_exit(graph):
    stream = client(graph).completions.create(model="scripted-agent", prompt="go\n", max_tokens=400, stream=True,
                                              temperature=0, extra_body={"ignore_eos": True})
    worker = graph.processes["generation0"]
    first = next(iter(stream))
    threading.Timer(0.1, worker.popen.send_signal, (signal.SIGTERM,)).start()
    rest = list(stream)
    assert rest[-1].choices[0].finish_reason == "length" or rest[-1].usage.completion_tokens == 400
    assert worker.popen.wait(60) == 0 and first.choices
