"""The batched sampler: greedy, temperature, top-k, top-p, a generator per request (seeds)."""

from __future__ import annotations

import torch

from trtllm_mixquant.engine.sampling import SamplingParams


def sample(logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]) -> torch.Tensor:
    """Pick one token per row of logits [B, V] (fp32). Returns [B] int64 token ids.

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
