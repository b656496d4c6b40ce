"""OpenAIEndpointClient against a tiny local HTTP server returning canned chat completions."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.eval.benchmarks import OpenAIEndpointClient

TOOL_CALL = {"id": "call_1", "type": "function",
             "function": {"name": "math_hypot", "arguments": '{"x": 4, "y": 5}'}}
TOOLS = [{"type": "function", "function": {"name": "math_hypot", "parameters": {"type": "object"}}}]


class FakeServer:
    """Records each request; answers from a queue of (status, JSON body), else one canned completion."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict, dict]] = []
        self.replies: list[tuple[int, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.answer({"object": "list", "data": [{"id": "served-model", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(("POST", self.path, body, dict(self.headers)))
                status, reply = server.replies.pop(0) if server.replies else (200, completion())
                self.answer(reply, status)

            def answer(self, reply, status=200):
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


def completion(content="The answer is \\boxed{4}.", tool_calls=None):
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "served-model",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}]}


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def test_request_body_and_content(server):
    client = OpenAIEndpointClient(server.url, "m", api_key="secret")
    messages = [{"role": "user", "content": "2+2?"}]
    out = client.complete(messages, None, SamplingParams(max_tokens=128, temperature=0.6, top_p=0.95, seed=3,
                                                         stop=["</s>"]))
    assert (out.text, out.tool_calls, out.finish_reason) == ("The answer is \\boxed{4}.", None, "stop")
    method, path, body, headers = server.requests[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer secret"
    assert body == {"model": "m", "messages": messages, "max_tokens": 128, "temperature": 0.6, "top_p": 0.95,
                    "seed": 3, "stop": ["</s>"]}


def test_tools_and_tool_calls(server):
    server.replies.append((200, completion(content=None, tool_calls=[TOOL_CALL])))
    client = OpenAIEndpointClient(server.url + "/", "m")
    out = client.complete([{"role": "user", "content": "hypot?"}], TOOLS, SamplingParams(max_tokens=16))
    assert out.text == "" and out.tool_calls == [TOOL_CALL] and out.finish_reason == "tool_calls"
    body = server.requests[0][2]
    assert body["tools"] == TOOLS and body["temperature"] == 0.0 and "seed" not in body


def test_model_from_the_endpoint_and_retries(server, monkeypatch):
    monkeypatch.setattr("trtllm_mixquant.eval.benchmarks.openai_client.time.sleep", lambda s: None)
    client = OpenAIEndpointClient(server.url, max_retries=1)
    assert client.model == "served-model"
    server.replies.append((503, {"error": "busy"}))
    assert client.complete([], None, SamplingParams()).text.endswith("\\boxed{4}.")
    assert len(server.requests) == 2
    server.replies.extend([(400, {"error": "bad request"})])
    with pytest.raises(RuntimeError, match="HTTP 400"):
        client.complete([], None, SamplingParams())
    server.replies.append((200, {"unexpected": True}))
    with pytest.raises(RuntimeError, match="not a chat completion"):
        client.complete([], None, SamplingParams())


def test_extra_body_fields_reach_every_request():
    from trtllm_mixquant.engine.sampling import SamplingParams
    from trtllm_mixquant.eval.benchmarks import OpenAIEndpointClient

    client = OpenAIEndpointClient("http://127.0.0.1:9", model="m", extra_body={"mixquant": {"mode": "bf16"}})
    body = client.request_body([{"role": "user", "content": "hi"}], None, SamplingParams(max_tokens=3))
    assert body["mixquant"] == {"mode": "bf16"} and body["model"] == "m" and body["max_tokens"] == 3
