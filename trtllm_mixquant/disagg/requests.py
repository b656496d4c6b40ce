"""What the orchestrator knows about one request: routing, timings, and the events it streams."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from trtllm_mixquant.engine.sampling import SamplingParams


class RequestError(RuntimeError):
    """The request failed (worker death, timeout, invalid input discovered by a worker)."""


@dataclass
class Event:
    """One streamed update: new token ids, and the finish reason on the last event."""

    token_ids: list[int]
    finish_reason: str | None = None
    error: str | None = None


@dataclass
class Timings:
    """time.monotonic() stamps (one clock for every process of a host)."""

    submitted: float = 0.0
    admitted: float | None = None
    prefill_started: float | None = None
    prefill_ended: float | None = None
    transfer_started: float | None = None
    transfer_ended: float | None = None
    first_token: float | None = None
    finished: float | None = None
    kv_bytes: int = 0

    def ttft_breakdown(self) -> dict[str, float]:
        """Seconds spent queued, prefilling, transferring KV, and in the first decode step."""
        if self.first_token is None:
            return {}
        start_work = self.prefill_started or self.admitted or self.submitted
        out = {"queue": start_work - self.submitted, "ttft": self.first_token - self.submitted}
        if self.prefill_ended is not None:
            out["prefill"] = self.prefill_ended - self.prefill_started
        if self.transfer_ended is not None:
            out["transfer"] = self.transfer_ended - self.transfer_started
        out["first_decode"] = self.first_token - (self.transfer_ended or self.prefill_ended or start_work)
        return out


@dataclass(eq=False)
class RequestState:
    request_id: str
    token_ids: list[int]
    params: SamplingParams
    mode: str
    session_id: str | None
    quantized_until: int
    receive_until: int
    deadline: float | None
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    timings: Timings = field(default_factory=lambda: Timings(submitted=time.monotonic()))
    generation: str | None = None
    context: str | None = None
    kv_in_flight: bool = False  # a context worker owes the generation worker this request's KV
    output_ids: list[int] = field(default_factory=list)
    retries: int = 0
    done: bool = False
    cached_tokens: int = 0  # prompt tokens served by prefix caches
    prefilled_tokens: int = 0  # prompt tokens the context worker computed


class RequestHandle:
    """What `Orchestrator.submit` returns: stream events or await the whole result."""

    def __init__(self, state: RequestState):
        self.state = state
        self.request_id = state.request_id

    def __aiter__(self):
        return self._events()

    async def _events(self):
        while True:
            event = await self.state.events.get()
            if event.error:
                raise RequestError(event.error)
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

    @property
    def timings(self) -> Timings:
        return self.state.timings
