"""Pieces of OpenAI response bodies shared by the endpoints, and server-sent events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi.responses import StreamingResponse

from trtllm_mixquant.server.errors import APIError

if TYPE_CHECKING:
    from trtllm_mixquant.frontend.generation import TextGeneration
    from trtllm_mixquant.server.protocol import StreamOptions

SSE_DONE = "data: [DONE]\n\n"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


@dataclass(frozen=True)
class Envelope:
    """The fields every body and chunk of one response repeats."""

    id: str
    object: str  # "text_completion", "chat.completion", "chat.completion.chunk"
    model: str
    created: int = field(default_factory=now)

    def body(self, choices: list[dict], **extra) -> dict:
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                "choices": choices, **extra}


def sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _events(chunks: AsyncIterator[dict], head: Envelope, usage: Callable[[], dict],
                  options: StreamOptions | None) -> AsyncIterator[str]:
    try:
        async for chunk in chunks:
            yield sse(chunk)
        if options is not None and options.include_usage:
            yield sse(head.body([], usage=usage()))
    except APIError as e:
        yield sse(e.body())
    yield SSE_DONE


class EventStream(StreamingResponse):
    """Server-sent events that end the generations when the response ends, however it ends (a client
    that disconnects cancels the stream while the generators are suspended, so their own cleanup
    would wait for garbage collection)."""

    def __init__(self, events: AsyncIterator[str], gens: list[TextGeneration]):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.gens = gens

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            for gen in self.gens:
                gen.close()


def sse_response(chunks: AsyncIterator[dict], head: Envelope, gens: list[TextGeneration],
                 usage: Callable[[], dict], options: StreamOptions | None) -> StreamingResponse:
    """Chunks as server-sent events, then a usage chunk if `stream_options.include_usage`, then
    `[DONE]`. An error that happens mid-stream becomes an event with the OpenAI error body."""
    return EventStream(_events(chunks, head, usage, options), gens)
