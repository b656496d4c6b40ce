"""Control messages between the orchestrator and its workers (carried by a `channel.WorkerChannel`).

KV-cache bytes never travel here: they move worker to worker through a KV transport. Workers name
themselves by `WorkerSpec.id` (name and incarnation), so a message from a worker that has since
died and been replaced is recognised and dropped. Workers report durations, never clock stamps:
processes need not share a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trtllm_mixquant.engine.base import BlockUsage, KVEvent
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.transfer.base import PeerInfo


# ---- orchestrator -> worker --------------------------------------------------------------------
@dataclass
class KVSource:
    """Where a prefilled request's KV waits to be read (pull): the holding worker and its blocks, in
    the request's block order."""

    peer: PeerInfo
    blocks: list[int]
    hold_seconds: float  # how long the holder keeps them unread


@dataclass
class Admit:
    """Generation/colocated worker: take a request. Its first `receive_until` tokens' KV will arrive
    from a context worker (written into the blocks this worker reserves, or read from `source`);
    `quantized_until` is the phase rule (see `Sequence`)."""

    request_id: str
    token_ids: list[int]
    params: SamplingParams
    quantized_until: int
    receive_until: int
    source: KVSource | None = None


@dataclass
class Prefill:
    """Context worker: prefill `token_ids`, then write blocks [first_block, ...) into peer `dest`'s
    `dst_blocks`; with no `dest`, hold the blocks until a peer has read them (`WorkerSpec.hold_seconds`)."""

    request_id: str
    token_ids: list[int]
    dest: str | None = None
    first_block: int = 0
    dst_blocks: list[int] = field(default_factory=list)
    prompt_logprobs: int | None = None  # also score each prompt token (SamplingParams.prompt_logprobs)
    following_token: int | None = None  # with prompt_logprobs: the prompt token after token_ids


@dataclass
class Cancel:
    """End a request. kv_may_arrive (generation worker): a context worker was asked for its KV, so
    its reserved blocks stay held until the KV lands or `KVWontCome` says it never will."""

    request_id: str
    kv_may_arrive: bool = False


@dataclass
class KVWontCome:
    """Generation worker: the context worker never started sending this request's KV."""

    request_id: str


@dataclass
class Release:
    """Generation worker, pull: this request will not read the KV `source` holds for it (refused or
    cancelled before it was admitted); tell the holder, so that it frees the blocks now."""

    request_id: str
    source: KVSource


@dataclass
class Connect:
    peers: list[PeerInfo]


@dataclass
class CheckBlocks:
    """Check block ownership and answer with `BlocksChecked` (tests)."""


@dataclass
class Shutdown:
    pass


# ---- worker -> orchestrator --------------------------------------------------------------------
@dataclass
class Ready:
    worker: str
    peer: PeerInfo | None
    usage: BlockUsage | None = None
    error: str | None = None


@dataclass
class Admitted:
    worker: str
    request_id: str
    cached_tokens: int  # prompt tokens already in the worker's prefix cache
    first_block: int  # first block the context worker must send (-1: none)
    dst_blocks: list[int] = field(default_factory=list)  # where those blocks go


@dataclass
class Prefilled:
    worker: str
    request_id: str
    cached_tokens: int
    computed_tokens: int
    seconds: float  # from the Prefill order's arrival to the KV being ready
    blocks: list[int] = field(default_factory=list)  # held for a reader (Prefill without dest)
    prompt_logprobs: dict | None = None  # position -> engine.sampler.TokenLogprobs, if the Prefill asked


@dataclass
class Sent:
    worker: str
    request_id: str
    nbytes: int
    seconds: float
    ok: bool


@dataclass
class Cancelled:
    worker: str
    request_id: str
    kv_sent: bool  # a context worker had already started the transfer


@dataclass
class Tokens:
    worker: str
    request_id: str
    token_ids: list[int]
    finish_reason: str | None
    cached_tokens: int
    first_step_seconds: float | None = None  # on the first tokens: from runnable (KV landed) to this token
    logprobs: list | None = None  # engine.sampler.TokenLogprobs per token, if the request asked for them
    prompt_logprobs: dict | None = None  # on the first tokens: position -> TokenLogprobs of the positions it computed


@dataclass
class Failed:
    worker: str
    request_id: str
    message: str  # for the client: what was wrong, without internal names (the worker's log has the rest)
    invalid: bool = False  # the request itself cannot be served (HTTP 400), rather than a failure (500)


@dataclass
class Usage:
    worker: str
    usage: BlockUsage


@dataclass
class KVEvents:
    """Prefix-cache blocks stored and evicted since the last report (`WorkerSpec.kv_events`)."""

    worker: str
    events: list[KVEvent]


@dataclass
class BlocksChecked:
    worker: str
    error: str | None
