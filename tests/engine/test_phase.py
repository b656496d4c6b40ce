"""`RequestRules`: the one place where modes, lengths and max_tokens are checked."""

from __future__ import annotations

import pytest

from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.engine.phase import ALL_TOKENS, RequestRules
from trtllm_mixquant.errors import InvalidRequest


def test_phase_rule_and_max_tokens():
    rules = RequestRules(max_seq_len=100, k=2)
    assert rules.admit(10, 5, None).quantized_until == 8
    assert rules.admit(10, 5, "bf16").quantized_until == 0
    assert rules.admit(10, 5, "quantized").quantized_until == ALL_TOKENS
    assert rules.admit(10, None, None).max_tokens == 90  # None: the room left
    assert rules.admit(1, 99, None).quantized_until == 0  # never below 0
    for n, max_tokens, message in [(0, 5, "prompt is empty"), (10, 0, "max_tokens must be at least 1"),
                                   (10, 91, "prompt of 10 tokens plus 91 new tokens exceeds"),
                                   (100, None, "prompt of 100 tokens plus 1 new tokens exceeds")]:
        with pytest.raises(InvalidRequest, match=message):
            rules.admit(n, max_tokens, None)
    with pytest.raises(InvalidRequest, match="mode must be one of mixquant, bf16, quantized"):
        rules.admit(10, 5, "fp4")


def test_modes_the_engines_cannot_serve_say_why(tiny_engines, tiny_model_dir):
    dirs = resolve_engine_dirs(tiny_engines("qwen3", "nvfp4"))
    disagg = RequestRules.for_engines(dirs, 1, "mixquant", quantized_loaded=True, quantized_decode=False)
    with pytest.raises(InvalidRequest, match="use --topology colocated"):
        disagg.admit(3, 1, "quantized")
    bf16_only = RequestRules.for_engines(dirs, 1, "bf16", quantized_loaded=False, quantized_decode=True)
    with pytest.raises(InvalidRequest, match="were not loaded"):
        bf16_only.admit(3, 1, "mixquant")
    hf = resolve_engine_dirs(tiny_model_dir("qwen3"))
    assert hf.layout.block_size == 32 and hf.context is None
    with pytest.raises(InvalidRequest, match="needs a context engine.*python build.py"):
        RequestRules.for_engines(hf, 1, "mixquant", quantized_loaded=True, quantized_decode=True)
