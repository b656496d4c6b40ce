"""The Mix-Quant phase rule and the checks every front door applies to a request, written once.

A request's `mode` decides which tokens go through the context engine's quantized weights:
- `mixquant`: every prompt token but the last `k` quantized; the rest of the prompt and every
  generated token in BF16 (quantized prefilling, precise decoding);
- `bf16`: BF16 everywhere;
- `quantized`: the context engine's precision everywhere (the baseline Mix-Quant improves on).

`RequestRules` is what `LLM`, the in-process async engine, the orchestrator and every server hand a
request to: it validates the mode against the engines that are loaded, checks the length, fills in
`max_tokens` and returns the position before which tokens are quantized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trtllm_mixquant.errors import InvalidRequest

if TYPE_CHECKING:
    from trtllm_mixquant.engine.engine_dirs import EngineDirs

MODES = ("mixquant", "bf16", "quantized")
ALL_TOKENS = 1 << 62  # "every position": quantized mode's cut


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(MODES)} (got {mode!r})", param="mode")
    return mode


def quantized_until(mode: str, num_prompt_tokens: int, k: int) -> int:
    """Position before which tokens go through the quantized weights."""
    if mode == "bf16":
        return 0
    return ALL_TOKENS if mode == "quantized" else max(num_prompt_tokens - k, 0)


@dataclass(frozen=True)
class Admission:
    """A request that passed the rules."""

    mode: str
    max_tokens: int
    quantized_until: int


@dataclass(frozen=True)
class RequestRules:
    """max_seq_len: prompt plus output limit of the engines; k: precise prompt tokens in mixquant mode;
    unavailable: mode -> why these engines cannot serve it (weights not loaded, topology)."""

    max_seq_len: int
    k: int = 1
    default_mode: str = "mixquant"
    unavailable: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.k < 0:
            raise ValueError(f"num_precise_prompt_tokens must be >= 0 (got {self.k})")
        self.mode(self.default_mode)  # engines that cannot serve their own default mode are refused

    @classmethod
    def for_engines(cls, dirs: EngineDirs, k: int, default_mode: str, quantized_loaded: bool,
                    quantized_decode: bool) -> RequestRules:
        """quantized_loaded: the quantized weights are loaded; quantized_decode: they can also decode
        (colocated), which mode "quantized" needs."""
        unavailable = {}
        for mode in ("mixquant", "quantized"):
            if dirs.context is None:
                unavailable[mode] = (f"mode {mode!r} needs a context engine; {dirs.generation} has none. Build one "
                                     f"with `python build.py --model MODEL --phase both`, or use mode 'bf16'")
            elif not quantized_loaded:
                unavailable[mode] = (f"mode {mode!r} needs the context engine's weights, which were not loaded "
                                     "(the engine runs in mode 'bf16')")
        if "quantized" not in unavailable and not quantized_decode:
            unavailable["quantized"] = ("mode 'quantized' decodes with the quantized weights, which generation "
                                        "workers do not hold; use --topology colocated to compare it")
        return cls(dirs.max_seq_len, k, default_mode, unavailable)

    def mode(self, mode: str | None) -> str:
        mode = check_mode(mode or self.default_mode)
        if mode in self.unavailable:
            raise InvalidRequest(self.unavailable[mode])
        return mode

    def admit(self, num_prompt_tokens: int, max_tokens: int | None, mode: str | None) -> Admission:
        """Check a request; `max_tokens` None means all the room the maximum sequence length leaves."""
        mode = self.mode(mode)
        if num_prompt_tokens == 0:
            raise InvalidRequest("the prompt is empty", param="prompt")
        room = self.max_seq_len - num_prompt_tokens
        if max_tokens is None:
            max_tokens = max(room, 1)
        if max_tokens < 1:
            raise InvalidRequest(f"max_tokens must be at least 1 (got {max_tokens})")
        if max_tokens > room:
            raise InvalidRequest(f"prompt of {num_prompt_tokens} tokens plus {max_tokens} new tokens exceeds the "
                             f"engine's maximum sequence length of {self.max_seq_len} tokens")
        return Admission(mode, max_tokens, quantized_until(mode, num_prompt_tokens, self.k))
