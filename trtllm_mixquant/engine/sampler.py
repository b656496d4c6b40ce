"""The batched sampler: penalties, grammar masks, greedy, temperature, top-k, top-p, a generator
per request (seeds), and the log-probabilities a request asks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from trtllm_mixquant.engine.sampling import SamplingParams


@dataclass
class TokenLogprobs:
    """The chosen token's log-probability and the `top` most likely (token id, log-probability),
    of the model's distribution before penalties, masks and temperature (as vLLM reports them)."""

    logprob: float
    top: list[tuple[int, float]]


@dataclass
class Sampled:
    token_ids: list[int]
    logprobs: list[TokenLogprobs | None]


class Row(Protocol):
    """What the sampler reads of one sequence (`engine.sequence.Sequence` has these)."""

    params: SamplingParams
    generator: torch.Generator | None
    matcher: object | None  # engine.grammar.GrammarMatcher
    token_ids: list[int]
    num_prompt_tokens: int


def token_logprobs(logprobs: torch.Tensor, value: float, n: int) -> TokenLogprobs:
    """From one position's log-probabilities [V]: `value` (the chosen token's) and the `n` most likely."""
    if not n:
        return TokenLogprobs(value, [])
    top = torch.topk(logprobs, n)
    return TokenLogprobs(value, list(zip(top.indices.tolist(), top.values.tolist())))


def apply_penalties(logits: torch.Tensor, rows: list[Row]) -> None:
    """vLLM's penalties, in place on logits [B, V]: repetition over prompt and output tokens,
    presence and frequency over output tokens."""
    for i, row in enumerate(rows):
        p = row.params
        if not p.penalized:
            continue
        out = torch.tensor(row.token_ids[row.num_prompt_tokens:], dtype=torch.long, device=logits.device)
        if p.repetition_penalty != 1.0:
            seen = torch.tensor(sorted(set(row.token_ids)), dtype=torch.long, device=logits.device)
            values = logits[i, seen]
            logits[i, seen] = torch.where(values > 0, values / p.repetition_penalty, values * p.repetition_penalty)
        if out.numel() and (p.presence_penalty or p.frequency_penalty):
            counts = torch.bincount(out, minlength=logits.shape[1]).to(logits.dtype)
            logits[i] -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0).to(logits.dtype)


def pick(logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]) -> torch.Tensor:
    """One token per row of logits [B, V] (fp32). Returns [B] int64 token ids.

    Rows with temperature 0 take the argmax. Sampled rows draw one uniform number each from their
    request's generator (so a seeded request is reproducible whatever it is batched with) and
    invert the filtered distribution's CDF.
    """
    greedy = logits.argmax(dim=-1)
    sampled_rows = [i for i, p in enumerate(params) if p.temperature > 0]
    if not sampled_rows:
        return greedy
    rows = torch.tensor(sampled_rows, device=logits.device)
    temps = torch.tensor([params[i].temperature for i in sampled_rows], device=logits.device)
    probs = torch.softmax(logits[rows] / temps[:, None], dim=-1)
    probs_sorted, order = probs.sort(dim=-1, descending=True)
    rank = torch.arange(probs.shape[-1], device=logits.device)
    top_k = torch.tensor([params[i].top_k or probs.shape[-1] for i in sampled_rows], device=logits.device)
    top_p = torch.tensor([params[i].top_p for i in sampled_rows], device=logits.device)
    mass_before = probs_sorted.cumsum(-1) - probs_sorted
    keep = (rank < top_k[:, None]) & (mass_before < top_p[:, None])
    probs_sorted = torch.where(keep, probs_sorted, 0.0)
    cdf = probs_sorted.cumsum(-1)
    uniform = torch.stack([torch.rand((), generator=generators[i]) for i in sampled_rows]).to(logits.device)
    pick = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None]).clamp_max(probs.shape[-1] - 1)
    out = greedy.clone()
    out[rows] = order.gather(1, pick).squeeze(1)
    return out


@torch.inference_mode()
def sample(logits: torch.Tensor, rows: list[Row]) -> Sampled:
    """The next token of each row, from logits [B, V] (fp32, changed in place)."""
    wanted = [i for i, row in enumerate(rows) if row.params.logprobs is not None]
    raw = torch.log_softmax(logits[wanted], dim=-1) if wanted else None
    apply_penalties(logits, rows)
    for i, row in enumerate(rows):
        if row.matcher is not None:
            row.matcher.mask(logits[i])
    tokens = pick(logits, [r.params for r in rows], [r.generator for r in rows]).tolist()
    logprobs: list[TokenLogprobs | None] = [None] * len(rows)
    for j, i in enumerate(wanted):
        logprobs[i] = token_logprobs(raw[j], raw[j, tokens[i]].item(), rows[i].params.logprobs)
    return Sampled(tokens, logprobs)
