"""Label-free quantization-error tasks on any text, as a function of context length.

For each window (a prompt of L tokens and the C tokens that follow it in the text) and each mode:
- continuation NLL: mean negative log-likelihood of the C true tokens, teacher-forced (`LLM.score`:
  prompt prefilled, continuation decoded under the mode's phase rules);
- KL: mean over the C positions of KL(P_bf16 || P_mode) of the next-token distribution;
- greedy agreement: how many greedy tokens the mode generates before it first differs from BF16's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from trtllm_mixquant.engine.sampling import SamplingParams


@dataclass(frozen=True)
class Window:
    prompt: list[int]
    continuation: list[int]

    @property
    def length(self) -> int:
        return len(self.prompt)


def text_windows(stream: list[int], lengths: list[int], continuation: int, samples: int, seed: int) -> list[Window]:
    """`samples` windows per prompt length at seeded random offsets of a token stream."""
    rng = random.Random(seed)
    windows = []
    for length in lengths:
        room = len(stream) - length - continuation
        if room < 0:
            raise ValueError(f"the text has {len(stream)} tokens, too few for a {length}-token prompt plus "
                             f"{continuation} continuation tokens; give more text or shorter --lengths")
        for _ in range(samples):
            start = rng.randint(0, room)
            windows.append(Window(stream[start:start + length], stream[start + length:start + length + continuation]))
    return windows


def kl_divergence(reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """KL(P_ref || P_other) per row of log-probabilities [C, V] -> [C] (nats)."""
    return (reference.exp() * (reference - other)).sum(-1)


def first_divergence(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def quantization_error(llm, windows: list[Window], modes: list[str], greedy_tokens: int) -> list[dict]:
    """One record per (window, mode): {"length", "mode", "window", "nll", "kl", "agreement"}."""
    greedy = SamplingParams(max_tokens=greedy_tokens, ignore_eos=True)
    prompts = [w.prompt for w in windows]
    continuations = {m: [o.token_ids for o in llm.generate(prompts, greedy, mode=m)] for m in {"bf16", *modes}}
    records = []
    for i, window in enumerate(windows):
        reference = llm.score_distributions(window.prompt, window.continuation, mode="bf16")
        target = torch.tensor(window.continuation)
        for mode in modes:
            dist = reference if mode == "bf16" else llm.score_distributions(window.prompt, window.continuation, mode)
            records.append({
                "length": window.length, "mode": mode, "window": i,
                "nll": float(-dist[torch.arange(len(target)), target].mean()),
                "kl": float(kl_divergence(reference, dist).mean()),
                "agreement": first_divergence(continuations[mode][i], continuations["bf16"][i]),
            })
    return records
