"""`Sequence`: one request's tokens, KV blocks and progress through prefill and decode."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import torch

from trtllm_mixquant.engine.sampling import SamplingParams

if TYPE_CHECKING:
    from trtllm_mixquant.engine.base import EngineRequest
    from trtllm_mixquant.engine.grammar import GrammarMatcher
    from trtllm_mixquant.engine.sampler import TokenLogprobs

_ids = itertools.count()


class Status(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """Prompt plus generated tokens.

    `quantized_until` is the position before which tokens go through the quantized weights (the
    Mix-Quant phase rule): `len(prompt) - k` in mixquant mode, 0 in bf16 mode, and "everything" in
    quantized mode. `num_computed` tokens already have KV in the cache.
    """

    token_ids: list[int]
    params: SamplingParams
    quantized_until: int
    num_prompt_tokens: int = 0
    logits_positions: tuple[int, int] | None = None  # scoring: positions whose logits are kept
    stops_after_prefill: bool = False  # scoring and context workers: no token is generated
    request_id: str = ""
    id: int = field(default_factory=lambda: next(_ids))
    status: Status = Status.WAITING
    num_computed: int = 0
    num_cached_prompt: int = 0  # prompt tokens served from the prefix cache
    block_table: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    generator: torch.Generator | None = None
    token_logprobs: list[float] = field(default_factory=list)  # score(): one per scored position
    distributions: list[torch.Tensor] | None = None  # score_distributions(): [V] log-probs per position
    matcher: GrammarMatcher | None = None  # structured outputs: what the grammar lets come next
    following_token: int | None = None  # see EngineRequest
    prompt_logprobs: dict[int, TokenLogprobs] | None = None  # position -> of the next prompt token

    def __post_init__(self):
        self.num_prompt_tokens = self.num_prompt_tokens or len(self.token_ids)
        if self.params.seed is not None:
            self.generator = torch.Generator().manual_seed(self.params.seed)
        elif self.params.temperature > 0:
            self.generator = torch.Generator()
            self.generator.seed()

    @classmethod
    def from_request(cls, req: EngineRequest) -> Sequence:
        if req.score_from is None and req.params.prompt_logprobs is not None:
            end = len(req.token_ids) - (req.following_token is None)  # the last position predicts no prompt token
            return cls(list(req.token_ids), req.params, req.quantized_until, logits_positions=(0, end),
                       stops_after_prefill=req.prefill_only, request_id=req.request_id,
                       following_token=req.following_token, prompt_logprobs={})
        if req.score_from is None:
            return cls(list(req.token_ids), req.params, req.quantized_until, stops_after_prefill=req.prefill_only,
                       request_id=req.request_id)
        n, end = req.score_from, len(req.token_ids)
        return cls(list(req.token_ids), req.params, req.quantized_until, num_prompt_tokens=n,
                   logits_positions=(n - 1, end - 1), stops_after_prefill=True, request_id=req.request_id,
                   distributions=[] if req.keep_distributions else None)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def output_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def num_pending(self) -> int:
        """Tokens whose KV is not computed yet."""
        return len(self.token_ids) - self.num_computed
