"""The engine backend interface: what the offline `LLM`, the in-process async engine and the
disaggregated workers drive, and the plain data that crosses it.

A backend owns one model and one KV pool. It is token-level (no text, no stop strings, no chat
templates: those belong to `trtllm_mixquant.frontend`) and keyed by request ids, so an engine that
keeps its own sequences and KV manager (a TensorRT-LLM executor) can implement it.

Disaggregated serving adds three calls: a generation worker `reserve`s the blocks a request's KV
will arrive in, says when it `kv_arrived`, and a context worker reads which `kv_blocks` hold a
prefilled request before it sends them. `abort` ends a request in any state and frees its blocks.
A backend can also report its prefix cache's changes (`kv_events`) for a KV-aware router.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.errors import InvalidRequest
from trtllm_mixquant.manifest import KVCacheLayout

if TYPE_CHECKING:
    import torch

    from trtllm_mixquant.engine.sampler import TokenLogprobs

    from trtllm_mixquant.runtime.kv_cache import KVCache


class RequestTooLarge(InvalidRequest):
    """The request needs more KV blocks than the whole pool holds."""


@dataclass
class EngineRequest:
    """One request as a backend sees it.

    quantized_until: position before which tokens go through the quantized weights (`engine.phase`).
    prefill_only: a context worker's request: prefill, generate nothing, keep the KV for sending.
    score_from: teacher-forced scoring: `token_ids[score_from:]` is a continuation whose
    log-probabilities are returned (nothing is generated).
    """

    request_id: str
    token_ids: list[int]
    params: SamplingParams
    quantized_until: int
    prefill_only: bool = False
    score_from: int | None = None
    keep_distributions: bool = False  # scoring: also return each position's whole distribution
    following_token: int | None = None  # prompt logprobs of a prefix: the prompt token after token_ids


@dataclass
class RequestUpdate:
    """What one step did to one request.

    finish_reason: None while it runs; "stop", "length", "prefilled" (prefill_only: its KV is ready
    in `kv_blocks`) or "scored".
    """

    request_id: str
    token_ids: list[int] = field(default_factory=list)  # tokens generated this step
    finish_reason: str | None = None
    num_cached_prompt: int = 0  # prompt tokens served by the prefix cache
    num_computed_prompt: int = 0  # on a finished prefill: prompt tokens this engine computed
    scores: list[float] | None = None  # scoring: log-probability of each continuation token
    distributions: list[torch.Tensor] | None = None  # scoring: [V] log-probabilities per position
    logprobs: list[TokenLogprobs] | None = None  # one per generated token, if the request asked for them
    prompt_logprobs: dict[int, TokenLogprobs] | None = None  # position p -> of token p + 1 (once, with the
    # first token, or with "prefilled"), for the positions this engine computed


def in_prompt_order(prompt_logprobs: dict[int, TokenLogprobs]) -> list[TokenLogprobs]:
    """`RequestUpdate.prompt_logprobs` (by position, from one or more engines) as a list: of prompt
    tokens 1, 2, ..."""
    return [value for _, value in sorted(prompt_logprobs.items())]


@dataclass(frozen=True)
class Reservation:
    """Blocks reserved for a request whose KV comes from elsewhere."""

    cached_tokens: int  # prompt tokens already in this engine's prefix cache
    first_block: int  # index in the request's block list of the first block to receive (-1: none)
    blocks: list[int]  # where the incoming blocks go


@dataclass(frozen=True)
class KVEvent:
    """A full block entering ("stored") or leaving ("removed") the prefix cache. Blocks chain by hash:
    a block's hash covers its parent's, its tokens and its phase (how many of them are quantized)."""

    kind: str
    block_hash: int
    parent_hash: int | None = None  # stored: the previous block's (None: the first block)
    token_ids: tuple[int, ...] = ()  # stored: the block's tokens
    quantized_tokens: int = 0  # stored: how many of them went through the quantized weights


@dataclass(frozen=True)
class BlockUsage:
    total: int
    free: int  # no request holds them (cached prefixes among them, reusable)
    used: int  # held by requests being computed or sent
    reserved: int  # held by requests waiting for their KV to arrive


class EngineBackend(Protocol):
    layout: KVCacheLayout  # of the running pool
    max_seq_len: int
    kv_cache: KVCache  # the pool's tensors, for KV transports

    def add(self, request: EngineRequest) -> None: ...

    def step(self) -> list[RequestUpdate]: ...

    def has_work(self) -> bool: ...

    def abort(self, request_id: str) -> None: ...

    def reserve(self, request: EngineRequest, receive_until: int) -> Reservation | None:
        """Match the prefix cache and reserve every block the request can need; None when too few are
        free now (retry later), `RequestTooLarge` when it can never fit."""

    def kv_arrived(self, request_id: str) -> None: ...

    def kv_blocks(self, request_id: str) -> list[int]: ...

    def block_usage(self) -> BlockUsage: ...

    def kv_events(self) -> list[KVEvent]:
        """Prefix-cache changes since the last call (for KV-aware routers), once `enable_kv_events` ran."""

    def enable_kv_events(self) -> None: ...

    def check_blocks(self) -> None:
        """Raise AssertionError if block ownership is inconsistent (tests)."""

    def close(self) -> None:
        """Stop what the backend started (its other tensor-parallel ranks)."""
