"""What the orchestrator knows about one request: routing, timings, and the stream it feeds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.frontend.async_engine import RequestStream


@dataclass
class Timings:
    """`submitted` and `first_token` on the orchestrator's clock; the rest are durations the workers measured."""

    submitted: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    prefill: float | None = None  # context worker: from the order's arrival to the KV being ready
    transfer: float | None = None  # context worker: the KV transfer
    first_step: float | None = None  # generation worker: from runnable (KV landed) to the first token
    kv_bytes: int = 0

    def ttft_breakdown(self) -> dict[str, float]:
        """Seconds spent queued (and in messages), prefilling, transferring KV, and in the first decode step."""
        if self.first_token is None:
            return {}
        ttft = self.first_token - self.submitted
        out = {"ttft": ttft, "prefill": self.prefill, "transfer": self.transfer, "first_decode": self.first_step}
        out = {k: v for k, v in out.items() if v is not None}
        out["queue"] = max(ttft - sum(v for k, v in out.items() if k != "ttft"), 0.0)
        return out


@dataclass(eq=False)
class RequestState:
    request_id: str
    token_ids: list[int]
    params: SamplingParams  # max_tokens filled in
    session_id: str | None
    quantized_until: int
    receive_until: int  # tokens whose KV comes from a context worker (0: none)
    deadline: float | None
    stream: RequestStream
    timings: Timings = field(default_factory=Timings)
    generation: str | None = None  # worker names
    context: str | None = None
    kv_in_flight: bool = False  # a context worker has been asked for this request's KV and owes it
    retries: int = 0
    done: bool = False
    cached_tokens: int = 0  # prompt tokens served by prefix caches
    prefilled_tokens: int = 0  # prompt tokens the context worker computed
    prompt_logprobs: dict = field(default_factory=dict)  # position -> TokenLogprobs, the context worker's part

    @property
    def produced(self) -> bool:
        """A token reached the client: the request can no longer be retried."""
        return self.stream.num_generated > 0

    @property
    def wire_id(self) -> str:
        """The id workers know this attempt by: a retry is a new request to them, so late messages
        about an earlier attempt are told apart."""
        return f"{self.request_id}/{self.retries}"
