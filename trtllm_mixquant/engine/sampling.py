"""Sampling parameters: how one request picks tokens and when it stops (plain data, no torch; the
batched sampler is `engine.sampler`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtllm_mixquant.errors import InvalidRequest


SEED_MIN, SEED_MAX = -(1 << 63), (1 << 63) - 1  # what torch.Generator.manual_seed takes (vLLM's bounds too)
TOP_K_MAX = (1 << 31) - 1  # it becomes a tensor element in the sampler
MAX_LOGPROBS = 20  # OpenAI's bound on top_logprobs
GUIDE_KINDS = ("json", "regex", "ebnf", "structural_tag")


@dataclass(frozen=True)
class Guide:
    """What a reply must be (structured outputs), enforced token by token by `engine.grammar`.

    kind "json": `spec` is a JSON schema (text), or "" for any JSON object, written compactly with
    ", " and ": " between items as models are trained to write it; "regex": a regular expression;
    "ebnf": a grammar in xgrammar's EBNF; "structural_tag": an xgrammar structural tag (JSON text),
    e.g. a tool call in its tags after optional reasoning (`engine.grammar.tool_call_guide`).
    """

    kind: str
    spec: str = ""

    def __post_init__(self):
        if self.kind not in GUIDE_KINDS:
            raise ValueError(f"a guide's kind must be one of {', '.join(GUIDE_KINDS)} (got {self.kind!r})")


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
    presence_penalty: float = 0.0  # subtracted from the logit of every token generated so far
    frequency_penalty: float = 0.0  # times how often it was generated
    repetition_penalty: float = 1.0  # divides positive (multiplies negative) logits of prompt and output tokens
    logprobs: int | None = None  # None: none; N: the chosen token's log-probability and the N most likely
    prompt_logprobs: int | None = None  # the same for every prompt token but the first (no prefix cache then)
    guide: Guide | None = None

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
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2 <= getattr(self, name) <= 2:
                problems.append(f"{name} must be in [-2, 2] (got {getattr(self, name)})")
        if not 0 < self.repetition_penalty <= 2:
            problems.append(f"repetition_penalty must be in (0, 2] (got {self.repetition_penalty})")
        for name in ("logprobs", "prompt_logprobs"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= MAX_LOGPROBS:
                problems.append(f"{name} must be in [0, {MAX_LOGPROBS}] (got {value})")
        if problems:
            raise ValueError("invalid sampling parameters: " + "; ".join(problems))

    @property
    def penalized(self) -> bool:
        return bool(self.presence_penalty or self.frequency_penalty) or self.repetition_penalty != 1.0


def grammar_engine():
    """The `engine.grammar` module (xgrammar behind it), or an InvalidRequest that says how to get it."""
    try:
        from trtllm_mixquant.engine import grammar
    except ImportError:
        raise InvalidRequest("structured outputs (response_format, guided_*, required or named tool_choice) need "
                             "xgrammar on the server: pip install 'trtllm-mixquant[structured]'") from None
    return grammar


def sampling_defaults(model_dir: Path) -> dict[str, Any]:
    """temperature, top_p and top_k from the model's generation_config.json (what requests that leave them out get)."""
    path = Path(model_dir) / "generation_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    return {k: config[k] for k in ("temperature", "top_p", "top_k") if config.get(k) is not None}
