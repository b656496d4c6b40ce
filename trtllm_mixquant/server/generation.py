"""One request in the orchestrator, seen as text: submitted, streamed as pieces with stop strings
applied, measured, and cancelled (its KV freed) when its reader stops early."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request

from trtllm_mixquant.disagg.orchestrator import QueueFull
from trtllm_mixquant.disagg.requests import RequestError, RequestHandle
from trtllm_mixquant.server.detokenizer import Detokenizer
from trtllm_mixquant.server.errors import APIError
from trtllm_mixquant.server.protocol import GenerationRequest
from trtllm_mixquant.server.state import ServerState
from trtllm_mixquant.server.text_match import StopStrings


@dataclass
class Piece:
    text: str
    finish_reason: str | None = None  # on the last piece: "stop" or "length"


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class Generation:
    """Read it once, with `pieces()` (streaming) or `text()` (whole); `close()` ends it early."""

    def __init__(self, state: ServerState, handle: RequestHandle, prompt_tokens: int, endpoint: str):
        self.state, self.handle, self.endpoint = state, handle, endpoint
        self.prompt_tokens, self.completion_tokens = prompt_tokens, 0
        self.detok = Detokenizer(state.tokenizer, state.hidden_ids)
        self.stops = StopStrings(handle.state.params.stop)
        self.finish_reason: str | None = None
        self.closed = False

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    async def pieces(self) -> AsyncIterator[Piece]:
        metrics, submitted = self.state.metrics, self.handle.timings.submitted
        last, status = None, "cancelled"
        try:
            async for event in self.handle:
                t = time.monotonic()
                if event.token_ids:
                    if last is None:
                        metrics.ttft.observe(t - submitted)
                    else:
                        metrics.itl.observe(t - last)
                    last = t
                    self.completion_tokens += len(event.token_ids)
                    metrics.generation_tokens.inc(amount=len(event.token_ids))
                piece = self._text(event.token_ids, event.finish_reason)
                if piece.finish_reason:
                    status = self.finish_reason = piece.finish_reason
                    metrics.latency.observe(time.monotonic() - submitted)
                    yield piece
                    return
                if piece.text:
                    yield piece
        except RequestError as e:
            status = "error"
            raise APIError(500, f"generation failed: {e}", code="generation_failed", counted=True) from None
        finally:
            self.close(status)

    def close(self, status: str = "cancelled") -> None:
        """End the request once: cancel it if it still runs (which frees its KV) and count its outcome."""
        if not self.closed:
            self.closed = True
            self.state.orchestrator.cancel(self.handle.request_id)  # a no-op once the request has ended
            self.state.metrics.requests.inc(self.endpoint, status)

    def _text(self, ids: list[int], finish_reason: str | None) -> Piece:
        if finish_reason == "stop" and ids and ids[-1] in self.state.eos_ids:
            ids = ids[:-1]
        text = self.stops.push(self.detok.push(ids))
        if finish_reason and not self.stops.hit:
            text += self.stops.push(self.detok.flush())
            text += self.stops.flush()
        return Piece(text, "stop" if self.stops.hit else finish_reason)

    async def text(self, request: Request) -> str:
        """The whole text; if the client disconnects first, cancel and raise (499)."""
        async def read() -> str:
            return "".join([piece.text async for piece in self.pieces()])
        reading, gone = asyncio.ensure_future(read()), asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({reading, gone}, return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                return reading.result()
            raise APIError(499, "the client disconnected", counted=True)
        finally:
            reading.cancel()
            gone.cancel()
            self.close()


async def start_generation(state: ServerState, prompt_ids: list[int], req: GenerationRequest,
                           max_tokens: int | None, endpoint: str, request_id: str) -> Generation:
    """Submit a prompt; max_tokens None means all the room the engine's maximum sequence length leaves."""
    state.check_ready()
    if max_tokens is None:
        max_tokens = max(state.max_seq_len - len(prompt_ids), 1)
    params = req.sampling_params(max_tokens, state.defaults)
    try:
        handle = await state.orchestrator.submit(prompt_ids, params, mode=req.mixquant.mode,
                                                 session_id=req.mixquant.session_id, request_id=request_id)
    except QueueFull as e:
        raise APIError(429, str(e), code="queue_full") from None
    except ValueError as e:
        raise APIError(400, str(e)) from None
    except RuntimeError as e:  # not ready (any more)
        raise APIError(503, str(e), code="not_ready") from None
    n, quantized = len(prompt_ids), min(handle.state.quantized_until, len(prompt_ids))
    state.metrics.prompt_tokens.inc(state.orchestrator.dirs.precision, amount=quantized)
    state.metrics.prompt_tokens.inc("bf16", amount=n - quantized)
    return Generation(state, handle, n, endpoint)
