"""Sampling parameters: how one request picks tokens and when it stops (plain data, no torch; the
batched sampler is `engine.sampler`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


SEED_MIN, SEED_MAX = -(1 << 63), (1 << 63) - 1  # what torch.Generator.manual_seed takes (vLLM's bounds too)
TOP_K_MAX = (1 << 31) - 1  # it becomes a tensor element in the sampler


@dataclass
class SamplingParams:
    """How to pick tokens and when to stop, for one request (OpenAI-style names).

    max_tokens None: all the room the engine's maximum sequence length leaves (`RequestRules.admit`
    turns it into a number before a request reaches an engine). `stop` strings are applied to the
    text by the frontend (`frontend.text.TextStream`); engines stop on tokens only.
    """

    max_tokens: int | None = None
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means no top-k filter
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False

    def __post_init__(self):
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        problems = []
        if self.max_tokens is not None and self.max_tokens < 1:
            problems.append(f"max_tokens must be at least 1 (got {self.max_tokens})")
        if not 0 <= self.temperature < math.inf:
            problems.append(f"temperature must be a finite number >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1] (got {self.top_p})")
        if not 0 <= self.top_k <= TOP_K_MAX:
            problems.append(f"top_k must be in [0, {TOP_K_MAX}] (got {self.top_k})")
        if self.seed is not None and not SEED_MIN <= self.seed <= SEED_MAX:
            problems.append(f"seed must be a 64-bit signed integer, in [{SEED_MIN}, {SEED_MAX}] (got {self.seed})")
        if problems:
            raise ValueError("invalid sampling parameters: " + "; ".join(problems))


def sampling_defaults(model_dir: Path) -> dict[str, Any]:
    """temperature, top_p and top_k from the model's generation_config.json (what requests that leave them out get)."""
    path = Path(model_dir) / "generation_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    return {k: config[k] for k in ("temperature", "top_p", "top_k") if config.get(k) is not None}
