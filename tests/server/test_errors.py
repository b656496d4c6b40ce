"""Errors in OpenAI's shape, with the status codes clients act on (503 while starting: test_openai_api)."""

from __future__ import annotations

import json

import pytest

from tests.server.conftest import http

pytestmark = pytest.mark.slow  # real servers or worker processes

openai = pytest.importorskip("openai")
pytest.importorskip("nixl")


def error_of(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_wrong_or_missing_api_key_is_401(server):
    with pytest.raises(openai.AuthenticationError) as e:
        server.client(api_key="wrong").models.list()
    assert error_of(e.value)["code"] == "invalid_api_key"
    assert http("GET", server.url + "/v1/models")[0] == 401
    assert http("GET", server.url + "/metrics")[0] == 401
    assert http("GET", server.url + "/health")[0] == 200  # only /health is open


def test_unknown_model_is_404(server):
    with pytest.raises(openai.NotFoundError) as e:
        server.client().completions.create(model="gpt-4", prompt="a", max_tokens=1)
    assert error_of(e.value)["code"] == "model_not_found" and server.model in error_of(e.value)["message"]


@pytest.mark.parametrize("kwargs,param,words", [
    (dict(temperature=-1), None, "temperature must be a finite number >= 0"),
    (dict(max_tokens=0), None, "max_tokens must be at least 1"),
    (dict(n=17), "n", "n must be in [1, 16]"),
    (dict(top_logprobs=2), "top_logprobs", "needs logprobs: true"),
    (dict(logprobs=True, top_logprobs=21), None, "logprobs must be in [0, 20]"),
    (dict(presence_penalty=3), None, "presence_penalty must be in [-2, 2]"),
    (dict(logit_bias={"5": 1}), "logit_bias", "not supported"),
    (dict(extra_body={"mixquant": {"mode": "fp4"}}), "mode", "mode must be one of mixquant, bf16, quantized"),
    (dict(extra_body={"mixquant": {"mode": "quantized"}}), None, "--topology colocated"),
    (dict(tool_choice="required"), "tool_choice", "requires tools"),
    (dict(messages=[{"role": "user", "content": "a" * 2100}]), None, "maximum sequence length of 2048 tokens"),
    (dict(messages=[{"role": "robot", "content": "a"}]), "messages.0.role", "invalid request"),
])
def test_invalid_requests_are_400(server, kwargs, param, words):
    kwargs = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **kwargs}
    with pytest.raises(openai.BadRequestError) as e:
        server.client().chat.completions.create(model=server.model, **kwargs)
    err = error_of(e.value)
    assert words in err["message"] and err["type"] == "invalid_request_error"
    assert param is None or err["param"] == param


def test_malformed_json_and_unknown_routes(server):
    status, text = http("POST", server.url + "/v1/completions", None, {"Authorization": "Bearer test-key"})
    assert status == 400 and "error" in json.loads(text)
    status, text = http("GET", server.url + "/v2/nothing", headers={"Authorization": "Bearer test-key"})
    assert status == 404 and json.loads(text)["error"]["message"] == "Not Found"
    assert http("GET", server.url + "/v2/nothing")[0] == 401  # the key is checked first
