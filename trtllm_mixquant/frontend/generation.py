"""`TextGeneration`: one submitted request read as text, whatever engine runs it and whatever
protocol serves it. Applies stop strings (and ends the engine request at the first one), counts
tokens, and frees the request's KV however the reader stops (`close`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol

from trtllm_mixquant.errors import ServingError
from trtllm_mixquant.frontend.async_engine import AsyncEngine, GenerateRequest, RequestStream
from trtllm_mixquant.frontend.text import Piece


class Listener(Protocol):
    """Observes a generation (a server's metrics)."""

    def on_tokens(self, count: int, first: bool, now: float) -> None: ...

    def on_end(self, status: str, now: float) -> None:
        """status: the finish reason, "cancelled" or "error"."""


class TextGeneration:
    """Read it once, with `pieces()` (streaming) or `text()` (whole); `close()` ends it early."""

    def __init__(self, engine: AsyncEngine, stream: RequestStream, request: GenerateRequest,
                 listener: Listener | None = None):
        self.engine, self.stream, self.listener = engine, stream, listener
        self.text_stream = engine.codec.stream(request.params)
        self.prompt_tokens, self.completion_tokens = stream.num_prompt_tokens, 0
        self.finish_reason: str | None = None
        self.closed = False
        self.logprobs: list = []  # of tokens whose text has not been yielded yet
        self.prompt_logprobs: list | None = None  # TokenLogprobs of prompt tokens 1, 2, ... if the request asked

    @classmethod
    async def start(cls, engine: AsyncEngine, request: GenerateRequest,
                    listener: Listener | None = None) -> TextGeneration:
        """Submit `request`; raises what `AsyncEngine.submit` raises."""
        return cls(engine, await engine.submit(request), request, listener)

    @property
    def request_id(self) -> str:
        return self.stream.request_id

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    async def pieces(self) -> AsyncIterator[Piece]:
        status = "cancelled"
        try:
            async for event in self.stream:
                if event.token_ids:
                    if self.listener:
                        self.listener.on_tokens(len(event.token_ids), self.completion_tokens == 0, time.monotonic())
                    self.completion_tokens += len(event.token_ids)
                piece = self.text_stream.push(event.token_ids, event.finish_reason)
                if event.prompt_logprobs is not None:
                    self.prompt_logprobs = event.prompt_logprobs
                if event.logprobs:
                    shown = len(self.engine.codec.content(event.token_ids, event.finish_reason, self.text_stream.params))
                    self.logprobs += list(zip(event.token_ids[:shown], event.logprobs[:shown]))
                if piece.text or piece.finish_reason:
                    piece.logprobs, self.logprobs = self.logprobs, []
                if piece.finish_reason:
                    status = self.finish_reason = piece.finish_reason
                    yield piece
                    return
                if piece.text:
                    yield piece
        except ServingError:
            status = "error"
            raise
        finally:
            self.close(status)

    async def text(self) -> str:
        return "".join([piece.text async for piece in self.pieces()])

    def close(self, status: str = "cancelled") -> None:
        """End the request once: abort it if it still runs (which frees its KV) and report its outcome."""
        if not self.closed:
            self.closed = True
            self.engine.abort(self.stream.request_id)  # a no-op once the request has ended
            if self.listener:
                self.listener.on_end(status, time.monotonic())
