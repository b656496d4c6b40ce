"""The backend registry: an engine implementation registered from outside the package (here one
that wraps ours and records what it is asked) runs behind `LLM` with no change to it."""

from __future__ import annotations

import torch

from trtllm_mixquant.engine import BACKENDS
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.pytorch_backend import build_pytorch_backend
from trtllm_mixquant.engine.sampling import SamplingParams

CALLS: list[str] = []


class RecordingBackend:
    """Any object with the `EngineBackend` methods will do; this one forwards to the PyTorch backend."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        CALLS.append(name)
        return getattr(self.inner, name)


def build_recording(config, dirs, role, tp=None):
    return RecordingBackend(build_pytorch_backend(config, dirs, role, tp))


def test_a_registered_backend_serves_llm(tiny_engines):
    BACKENDS.register("recording", "tests.engine.test_backends:build_recording")
    engines = tiny_engines("qwen3", "nvfp4")
    params = SamplingParams(max_tokens=5, ignore_eos=True)
    ours = LLM(engines, dtype=torch.float32, backend="recording").generate("hello", params)[0]
    assert {"add", "step"} <= set(CALLS)
    assert ours.token_ids == LLM(engines, dtype=torch.float32).generate("hello", params)[0].token_ids
