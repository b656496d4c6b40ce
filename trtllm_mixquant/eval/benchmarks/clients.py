"""What the runner sends requests to: the `Client` protocol, and a client over any Python callable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.eval.benchmarks.core import Completion, Message

Tools = list[dict[str, Any]] | None


class Client(Protocol):
    """Answers one chat request; called from several threads at once when concurrency > 1."""

    def complete(self, messages: list[Message], tools: Tools, params: SamplingParams) -> Completion: ...


class CallableClient:
    """A client over fn(messages, tools, params) returning a Completion or just the reply text."""

    def __init__(self, fn: Callable[[list[Message], Tools, SamplingParams], Completion | str]):
        self.fn = fn

    def complete(self, messages: list[Message], tools: Tools, params: SamplingParams) -> Completion:
        out = self.fn(messages, tools, params)
        return out if isinstance(out, Completion) else Completion(str(out))
