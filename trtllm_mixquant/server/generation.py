"""HTTP glue around `frontend.TextGeneration`: requests submitted with the server's metrics
attached, domain errors answered as HTTP errors, and a reply cancelled when its client disconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import Request

from trtllm_mixquant.errors import ServingError
from trtllm_mixquant.frontend.async_engine import GenerateRequest
from trtllm_mixquant.frontend.generation import TextGeneration
from trtllm_mixquant.frontend.text import Piece
from trtllm_mixquant.server.errors import APIError, api_error
from trtllm_mixquant.server.metrics import ServerMetrics
from trtllm_mixquant.server.protocol import GenerationRequest
from trtllm_mixquant.server.state import ServerState


class MetricsListener:
    """Time to first token, inter-token latency, tokens and the outcome of one request."""

    def __init__(self, metrics: ServerMetrics, endpoint: str, submitted: float):
        self.metrics, self.endpoint, self.submitted, self.last = metrics, endpoint, submitted, submitted

    def on_tokens(self, count: int, first: bool, now: float) -> None:
        (self.metrics.ttft if first else self.metrics.itl).observe(now - self.last)
        self.last = now
        self.metrics.generation_tokens.inc(amount=count)

    def on_end(self, status: str, now: float) -> None:
        if status in ("stop", "length"):
            self.metrics.latency.observe(now - self.submitted)
        self.metrics.requests.inc(self.endpoint, status)


async def start_generation(state: ServerState, prompt_ids: list[int], req: GenerationRequest,
                           max_tokens: int | None, endpoint: str, request_id: str) -> TextGeneration:
    """Submit a prompt; max_tokens None means all the room the engine's maximum sequence length leaves."""
    params = req.sampling_params(max_tokens, state.defaults)
    request = GenerateRequest(prompt_ids, params, req.mixquant.mode, req.mixquant.session_id, request_id)
    listener = MetricsListener(state.metrics, endpoint, time.monotonic())
    gen = await TextGeneration.start(state.engine, request, listener)  # domain errors -> the app's handler
    n, quantized = len(prompt_ids), min(gen.stream.admission.quantized_until, len(prompt_ids))
    state.metrics.prompt_tokens.inc(state.engine.precision, amount=quantized)
    state.metrics.prompt_tokens.inc("bf16", amount=n - quantized)
    return gen


async def pieces(gen: TextGeneration) -> AsyncIterator[Piece]:
    """`gen.pieces()` with a failure that happens mid-way answered as an HTTP error."""
    try:
        async for piece in gen.pieces():
            yield piece
    except ServingError as e:
        raise api_error(e, counted=True) from None


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def whole_text(gen: TextGeneration, request: Request) -> str:
    """The whole text; if the client disconnects first, cancel and raise (499)."""
    async def read() -> str:
        return "".join([piece.text async for piece in pieces(gen)])
    reading, gone = asyncio.ensure_future(read()), asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({reading, gone}, return_when=asyncio.FIRST_COMPLETED)
        if reading.done():
            return reading.result()
        raise APIError(499, "the client disconnected", counted=True)
    finally:
        reading.cancel()
        gone.cancel()
        gen.close()
