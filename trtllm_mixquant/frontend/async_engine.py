"""`AsyncEngine`: what every server drives (the HTTP server, a Triton model, a notebook), and the
request and token stream that cross it.

Two implementations: `LocalEngine` (both engines in this process, one KV pool: Triton models,
notebooks, tests) and the disaggregated `Orchestrator` (context and generation worker processes).
Both are token-level; `TextGeneration` turns a stream into text.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trtllm_mixquant.engine.phase import Admission, RequestRules
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.errors import ServingError
from trtllm_mixquant.frontend.text import TextCodec


@dataclass
class GenerateRequest:
    prompt_ids: list[int]
    params: SamplingParams  # max_tokens None: all the room the maximum sequence length leaves
    mode: str | None = None  # None: the engine's default mode
    session_id: str | None = None  # keeps a conversation's turns on the same workers (prefix caches)
    request_id: str | None = None  # None: the engine names it


@dataclass
class TokenEvent:
    """New token ids, and on the last event the finish reason ("stop", "length", "cancelled") or an error."""

    token_ids: list[int]
    finish_reason: str | None = None
    error: ServingError | None = None
    logprobs: list | None = None  # engine.sampler.TokenLogprobs per token, if the request asked for them
    prompt_logprobs: list | None = None  # on the first event, if asked: TokenLogprobs of prompt tokens 1, 2, ...


@dataclass(eq=False)
class RequestStream:
    """What `AsyncEngine.submit` returns: iterate its events (an error event raises) or await `result()`."""

    request_id: str
    admission: Admission  # the mode, max_tokens and phase cut the request runs with
    num_prompt_tokens: int
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    num_cached_prompt: int = 0  # prompt tokens served by prefix caches (known at the first token)
    num_generated: int = 0  # tokens delivered so far
    timings: Any = None  # the engine's own breakdown, if it keeps one (the orchestrator's `Timings`)

    def __aiter__(self):
        return self._events()

    async def _events(self):
        while True:
            event = await self.events.get()
            if event.error is not None:
                raise event.error
            yield event
            if event.finish_reason:
                return

    async def result(self) -> tuple[list[int], str]:
        """All generated token ids and the finish reason."""
        ids, reason = [], None
        async for event in self:
            ids += event.token_ids
            reason = event.finish_reason
        return ids, reason


class AsyncEngine(Protocol):
    rules: RequestRules
    codec: TextCodec
    precision: str  # the context engine's precision ("bf16" without one)
    model_dir: Path  # the generation engine's folder: config, tokenizer, generation_config.json
    ready: bool

    async def start(self) -> None: ...

    async def shutdown(self) -> None:
        """Stop; requests still in flight end with an `Unavailable` error."""

    async def submit(self, request: GenerateRequest) -> RequestStream:
        """Raises InvalidRequest, Overloaded or Unavailable (`trtllm_mixquant.errors`)."""

    def abort(self, request_id: str) -> None:
        """End a request early and free its KV (a no-op once it has ended)."""

    def health(self) -> tuple[bool, dict]:
        """(serving, details for a health endpoint)."""

    def stats(self) -> dict: ...
