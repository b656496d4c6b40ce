"""Hostile input, as a hostile user would send it: every request gets its status and an OpenAI-shaped
error body, nothing a request carries ends a worker, and the server keeps serving (the shared
`server` fixture: disaggregated, an API key)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.server.conftest import API_KEY, http

pytestmark = pytest.mark.slow  # real servers or worker processes

pytest.importorskip("nixl")
KEY = {"Authorization": f"Bearer {API_KEY}"}
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
DONT_RUN = "{% for i in range(10**9) %}{% endfor %}"  # a template that would block for minutes

# (name, endpoint, body fields over a valid body, expected status); "model" is filled in.
CASES = [
    ("seed 2**64", "completions", {"seed": 2**64}, 400),
    ("seed below -2**63", "completions", {"seed": -2**63 - 1}, 400),
    ("seed not an integer", "completions", {"seed": 1.5}, 400),
    ("temperature negative", "completions", {"temperature": -1}, 400),
    ("temperature infinite", "completions", {"temperature": 1e400}, 400),
    ("top_p zero", "completions", {"top_p": 0}, 400),
    ("top_p above one", "completions", {"top_p": 1.5}, 400),
    ("top_k negative", "completions", {"top_k": -1}, 400),
    ("top_k beyond int32", "completions", {"top_k": 2**40}, 400),
    ("max_tokens zero", "completions", {"max_tokens": 0}, 400),
    ("max_tokens negative", "completions", {"max_tokens": -5}, 400),
    ("max_tokens beyond the context", "completions", {"max_tokens": 10**30}, 400),
    ("max_tokens a string", "completions", {"max_tokens": "many"}, 400),
    ("empty prompt", "completions", {"prompt": ""}, 400),
    ("empty token list", "completions", {"prompt": []}, 400),
    ("negative token id", "completions", {"prompt": [-1]}, 400),
    ("token id beyond the vocabulary", "completions", {"prompt": [10**20]}, 400),
    ("fractional token id", "completions", {"prompt": [1.5]}, 400),
    ("lone surrogate in the prompt", "completions", {"prompt": "a\ud800b"}, 400),
    ("prompt too long", "completions", {"prompt": "x" * 3000}, 400),
    ("a 1 MB prompt", "completions", {"prompt": "y" * (1 << 20)}, 400),
    ("65 prompts", "completions", {"prompt": ["a"] * 65}, 400),
    ("n of 17", "completions", {"prompt": "a", "n": 17}, 400),
    ("a schema that is not JSON", "completions", {"prompt": "a", "guided_json": "{"}, 400),
    ("prompt of the wrong type", "completions", {"prompt": {"text": "a"}}, 400),
    ("no prompt", "completions", {"prompt": None}, 400),
    ("stop of the wrong type", "completions", {"stop": 123}, 400),
    ("stream_options of the wrong type", "completions", {"stream": True, "stream_options": {"include_usage": []}}, 400),
    ("unknown mixquant option", "completions", {"mixquant": {"colour": "red"}}, 400),
    ("unknown mode", "completions", {"mixquant": {"mode": "fp4"}}, 400),
    ("mode quantized on generation workers", "completions", {"mixquant": {"mode": "quantized"}}, 400),
    ("best_of", "completions", {"best_of": 3}, 400),
    ("logit_bias", "completions", {"logit_bias": {"1": 5}}, 400),
    ("unknown model", "completions", {"model": "gpt-5"}, 404),
    ("a model name with a surrogate", "completions", {"model": "m\ud800"}, 404),
    ("no messages", "chat/completions", {"messages": []}, 400),
    ("messages not a list", "chat/completions", {"messages": "hi"}, 400),
    ("unknown role", "chat/completions", {"messages": [{"role": "robot", "content": "a"}]}, 400),
    ("image content", "chat/completions",
     {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400),
    ("lone surrogate in a message", "chat/completions", {"messages": [{"role": "user", "content": "\udfff"}]}, 400),
    ("a 2 MB message", "chat/completions", {"messages": [{"role": "user", "content": "z" * (2 << 20)}]}, 400),
    ("tool without a function", "chat/completions", {"tools": [{"type": "function"}]}, 400),
    ("tool_choice names no tool", "chat/completions", {"tools": [{"type": "function", "function": {"name": "f"}}],
                                                        "tool_choice": {"type": "function", "function": {"name": "g"}}},
     400),
    ("tool_choice required without tools", "chat/completions", {"tool_choice": "required"}, 400),
    ("tool_choice unknown", "chat/completions", {"tool_choice": "sometimes"}, 400),
    ("a client's chat template", "chat/completions", {"chat_template_kwargs": {"chat_template": DONT_RUN}}, 400),
    ("template kwargs that clash", "chat/completions", {"chat_template_kwargs": {"tokenize": True}}, 400),
    ("max_completion_tokens negative", "chat/completions", {"max_completion_tokens": -1}, 400),
]
RAW = [  # (name, method, path, body bytes, headers, expected status)
    ("malformed JSON", "POST", "/v1/completions", b'{"model": ', KEY, 400),
    ("JSON that is not an object", "POST", "/v1/completions", b"[1, 2]", KEY, 400),
    ("empty body", "POST", "/v1/chat/completions", b"", KEY, 400),
    ("NaN temperature", "POST", "/v1/completions", b'{"model": "M", "prompt": "a", "temperature": NaN}', KEY, 400),
    ("invalid UTF-8", "POST", "/v1/completions", b'{"model": "M", "prompt": "\xff\xfe"}', KEY, 400),
    ("wrong method", "GET", "/v1/completions", None, KEY, 405),
    ("unknown route", "GET", "/v1/engines", None, KEY, 404),
    ("no API key", "POST", "/v1/completions", b'{"model": "M", "prompt": "a"}', {}, 401),
    ("wrong API key", "GET", "/v1/models", None, {"Authorization": "Bearer nope"}, 401),
    ("Basic auth", "GET", "/v1/models", None, {"Authorization": "Basic dGVzdC1rZXk="}, 401),
    ("metrics without the key", "GET", "/metrics", None, {}, 401),
    ("docs are off", "GET", "/docs", None, KEY, 404),
    ("openapi is off", "GET", "/openapi.json", None, KEY, 404),
    ("malformed JSON without a key", "POST", "/v1/completions", b'{"model": ', {}, 401),
]


def raw(url: str, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url + path, body, {"Content-Type": "application/json", **headers}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def assert_openai_error(status: int, text: str, expected: int, name: str) -> dict:
    assert status == expected, f"{name}: got {status} {text[:300]}"
    body = json.loads(text)
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, name
    message = body["error"]["message"]
    for internal in ("Traceback", "Error:", "/work/", "site-packages", "trtllm_mixquant.", "transformers.", "torch."):
        assert internal not in message, f"{name}: the message shows internals: {message}"
    return body["error"]


def test_hostile_requests_get_clean_errors_and_the_server_keeps_serving(server):
    assert len(CASES) + len(RAW) >= 40
    base = {"completions": {"model": server.model, "prompt": "hello", "max_tokens": 2},
            "chat/completions": {"model": server.model, **CHAT}}
    for name, endpoint, fields, expected in CASES:
        body = json.dumps({**base[endpoint], **fields}).encode()
        status, text = raw(server.url, "POST", f"/v1/{endpoint}", body, KEY)
        assert_openai_error(status, text, expected, name)
    for name, method, path, body, headers, expected in RAW:
        body = body.replace(b'"M"', json.dumps(server.model).encode()) if body else body
        assert_openai_error(*raw(server.url, method, path, body, headers), expected, name)
    assert http("GET", server.url + "/health")[0] == 200
    ok = http("POST", server.url + "/v1/completions", {"model": server.model, "prompt": "still here", "max_tokens": 3,
                                                       "ignore_eos": True}, KEY)
    assert ok[0] == 200 and json.loads(ok[1])["usage"]["completion_tokens"] == 3
    workers = json.loads(http("GET", server.url + "/health")[1])
    assert workers == {"status": "ok"}  # no worker died


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + API_KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % (9 << 20))
        answer = b""
        while chunk := s.recv(65536):  # answered, and closed, with no byte of the body sent
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "--max-body-bytes" in assert_openai_error(413, body.decode(), 413, "9 MB body")["message"]


def test_health_answers_while_a_slow_5mb_body_arrives(server):
    """The body trickles in over ~3 s and is then refused as too long without being tokenized;
    meanwhile /health keeps answering in well under a second."""
    body = json.dumps({"model": server.model, "prompt": "w" * (5 << 20), "max_tokens": 2}).encode()
    port = int(server.url.rsplit(":", 1)[1])
    answer = {}

    def send_slowly():
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Authorization: Bearer " + API_KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
            for i in range(0, len(body), len(body) // 30):
                s.sendall(body[i:i + len(body) // 30])
                time.sleep(0.1)
            answer["head"] = s.recv(4096).split(b"\r\n", 1)[0]
    thread = threading.Thread(target=send_slowly)
    thread.start()
    worst = 0.0
    while thread.is_alive():
        start = time.monotonic()
        assert http("GET", server.url + "/health")[0] == 200
        worst = max(worst, time.monotonic() - start)
        time.sleep(0.05)
    thread.join()
    assert answer["head"] == b"HTTP/1.1 400 Bad Request" and worst < 1.0, (answer, worst)
