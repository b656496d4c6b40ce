"""Control messages between the orchestrator and its workers (pickled through multiprocessing queues).

KV-cache bytes never travel here: they move worker to worker through NIXL (`kv_transfer.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trtllm_mixquant.disagg.kv_transfer import KVPoolInfo
from trtllm_mixquant.engine.sampling import SamplingParams


# ---- orchestrator -> worker --------------------------------------------------------------------
@dataclass
class Admit:
    """Generation/colocated worker: take a request. Its first `receive_until` tokens' KV will arrive
    from a context worker; `quantized_until` is the phase rule (see `Sequence`)."""

    request_id: str
    token_ids: list[int]
    params: SamplingParams
    quantized_until: int
    receive_until: int


@dataclass
class Prefill:
    """Context worker: prefill `token_ids`, then write blocks [first_block, ...) into `dest`'s `dst_blocks`."""

    request_id: str
    token_ids: list[int]
    dest: str
    first_block: int
    dst_blocks: list[int]


@dataclass
class ReleaseReceiving:
    """Generation worker: the KV for this request will not come (its prefill was cancelled)."""

    request_id: str


@dataclass
class ExpectKV:
    """Generation worker (torch.distributed transport): post the receive of this request's KV."""

    request_id: str
    source_rank: int


@dataclass
class Cancel:
    request_id: str


@dataclass
class Connect:
    peers: list[KVPoolInfo]


@dataclass
class Shutdown:
    pass


# ---- worker -> orchestrator --------------------------------------------------------------------
@dataclass
class Ready:
    worker: str
    pool: KVPoolInfo | None
    error: str | None = None


@dataclass
class Admitted:
    worker: str
    request_id: str
    cached_tokens: int  # prompt tokens already in the worker's prefix cache
    first_block: int  # first block the context worker must send
    dst_blocks: list[int] = field(default_factory=list)  # where those blocks go


@dataclass
class Prefilled:
    worker: str
    request_id: str
    cached_tokens: int
    computed_tokens: int
    started: float  # time.monotonic() (one clock for all processes of a host)
    ended: float


@dataclass
class Sent:
    worker: str
    request_id: str
    nbytes: int
    started: float
    ended: float
    ok: bool


@dataclass
class KVSending:
    """Context worker (torch.distributed transport): the send of this request's KV has been issued."""

    worker: str
    request_id: str


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
    time: float


@dataclass
class Failed:
    worker: str
    request_id: str
    message: str
