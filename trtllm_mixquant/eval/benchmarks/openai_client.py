"""A client for any OpenAI-compatible `/v1/chat/completions` endpoint, over `requests` (no SDK)."""

from __future__ import annotations

import time
from typing import Any

import requests

from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.eval.benchmarks.clients import Tools
from trtllm_mixquant.eval.benchmarks.core import Completion, Message

_RETRY_STATUS = {429, 500, 502, 503, 504}


class OpenAIEndpointClient:
    """POSTs chat completions to base_url (e.g. http://host:8000/v1); thread-safe.

    model: the served model name; None asks the endpoint's `/models` for the first one.
    extra_body: extra top-level fields for every request (vendor extensions).
    timeout: seconds to wait for a reply (long: reasoning replies arrive whole, not streamed).
    Connection errors and 429/5xx answers are retried `max_retries` times with a growing pause.
    """

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 3600.0, max_retries: int = 3, extra_body: dict[str, Any] | None = None):
        self.base_url = base_url.rstrip("/")
        self.extra_body = extra_body or {}  # e.g. {"mixquant": {"mode": "bf16"}} for our server
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout, self.max_retries = timeout, max_retries
        self.model = model or self._first_model()

    def _first_model(self) -> str:
        models = self._send("GET", "/models").get("data") or []
        if not models:
            raise RuntimeError(f"{self.base_url}/models lists no model; pass the model name")
        return models[0]["id"]

    def request_body(self, messages: list[Message], tools: Tools, params: SamplingParams) -> dict[str, Any]:
        """The JSON body for one request (top_k only when set: it is an extension some servers accept)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": params.max_tokens,
                                "temperature": params.temperature, "top_p": params.top_p}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = params.stop
        if params.top_k:
            body["top_k"] = params.top_k
        if tools:
            body["tools"] = tools
        return {**body, **self.extra_body}

    def complete(self, messages: list[Message], tools: Tools, params: SamplingParams) -> Completion:
        reply = self._send("POST", "/chat/completions", self.request_body(messages, tools, params))
        try:
            choice = reply["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"{self.base_url}: not a chat completion: {str(reply)[:300]}") from None
        return Completion(message.get("content") or "", message.get("tool_calls") or None,
                          choice.get("finish_reason"))

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                response = requests.request(method, url, json=body, headers=self.headers, timeout=self.timeout)
                if response.status_code not in _RETRY_STATUS or attempt >= self.max_retries:
                    break
            except requests.ConnectionError:
                if attempt >= self.max_retries:
                    raise
            time.sleep(min(2.0**attempt, 30.0))
            attempt += 1
        if not response.ok:
            raise RuntimeError(f"{method} {url}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()
