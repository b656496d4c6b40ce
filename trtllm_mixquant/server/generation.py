"""HTTP glue around `frontend.TextGeneration`: requests submitted with the server's metrics
attached (n replies per prompt, several prompts per request), domain errors answered as HTTP
errors, and replies cancelled when their client disconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request

from trtllm_mixquant.engine.sampling import Guide
from trtllm_mixquant.errors import ServingError
from trtllm_mixquant.frontend.async_engine import GenerateRequest
from trtllm_mixquant.frontend.generation import TextGeneration
from trtllm_mixquant.frontend.text import Piece
from trtllm_mixquant.server.errors import APIError, api_error
from trtllm_mixquant.server.metrics import ServerMetrics
from trtllm_mixquant.server.protocol import GenerationRequest
from trtllm_mixquant.server.state import ServerState

T = TypeVar("T")


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
                           max_tokens: int | None, endpoint: str, request_id: str, guide: Guide | None = None,
                           choice: int = 0) -> TextGeneration:
    """Submit a prompt; max_tokens None means all the room the engine's maximum sequence length leaves."""
    params = req.sampling_params(max_tokens, state.defaults, guide, choice)
    request = GenerateRequest(prompt_ids, params, req.mixquant.mode, req.mixquant.session_id, request_id)
    listener = MetricsListener(state.metrics, endpoint, time.monotonic())
    gen = await TextGeneration.start(state.engine, request, listener)  # domain errors -> the app's handler
    n, quantized = len(prompt_ids), min(gen.stream.admission.quantized_until, len(prompt_ids))
    state.metrics.prompt_tokens.inc(state.engine.precision, amount=quantized)
    state.metrics.prompt_tokens.inc("bf16", amount=n - quantized)
    return gen


async def start_generations(state: ServerState, prompts: list[list[int]], req: GenerationRequest,
                            max_tokens: int | None, endpoint: str, request_id: str,
                            guide: Guide | None = None) -> list[TextGeneration]:
    """`req.n` replies per prompt, in the order of the response's choices (prompt by prompt); all or none."""
    if guide is not None:
        await state.check_guide(guide)
    count = len(prompts) * req.n
    gens: list[TextGeneration] = []
    try:
        for ids in prompts:
            for j in range(req.n):
                name = request_id if count == 1 else f"{request_id}-{len(gens)}"
                gens.append(await start_generation(state, ids, req, max_tokens, endpoint, name, guide, j))
    except BaseException:
        for gen in gens:
            gen.close()
        raise
    return gens


def usage(gens: list[TextGeneration], n: int) -> dict:
    """Token counts of a response: each prompt once (whatever n), every reply's tokens."""
    prompt = sum(g.prompt_tokens for g in gens[::n])
    completion = sum(g.completion_tokens for g in gens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


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


@dataclass
class Whole:
    """One reply read to its end."""

    text: str
    logprobs: list  # (token id, TokenLogprobs), if the request asked for them


async def _whole(gen: TextGeneration) -> Whole:
    text, logprobs = [], []
    async for piece in pieces(gen):
        text.append(piece.text)
        logprobs += piece.logprobs
    return Whole("".join(text), logprobs)


async def whole_replies(gens: list[TextGeneration], request: Request) -> list[Whole]:
    """Every reply, read concurrently; if the client disconnects first, cancel them all and raise (499)."""
    reading = asyncio.ensure_future(asyncio.gather(*[_whole(g) for g in gens]))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({reading, gone}, return_when=asyncio.FIRST_COMPLETED)
        if reading.done():
            return reading.result()
        raise APIError(499, "the client disconnected", counted=True)
    finally:
        reading.cancel()
        gone.cancel()
        for gen in gens:
            gen.close()


async def merged(streams: list[AsyncIterator[T]]) -> AsyncIterator[T]:
    """The items of several async iterators as they come; the first error ends all of them."""
    if len(streams) == 1:
        async for item in streams[0]:
            yield item
        return
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(stream: AsyncIterator[T]) -> None:
        try:
            async for item in stream:
                await queue.put((item, None))
            await queue.put((done, None))
        except Exception as e:  # noqa: BLE001 - handed to the reader
            await queue.put((done, e))
    tasks = [asyncio.ensure_future(pump(s)) for s in streams]
    try:
        remaining = len(tasks)
        while remaining:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is done:
                remaining -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
