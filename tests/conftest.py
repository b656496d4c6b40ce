"""Shared fixtures: tiny random Hugging Face checkpoints, written once per test session."""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    # Triton kernels run in its interpreter on CPU; the flag is read when triton is first imported.
    os.environ.setdefault("TRITON_INTERPRET", "1")

from trtllm_mixquant.builder.pipeline import BuildOptions, build_engines
from trtllm_mixquant.random_model import write_random_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Return a function family -> folder of a tiny random checkpoint of that family (cached)."""
    cache = {}

    def get(family: str = "qwen3", seed: int = 0):
        if (family, seed) not in cache:
            cache[family, seed] = write_random_model(tmp_path_factory.mktemp(f"{family}-{seed}"), family, seed=seed)
        return cache[family, seed]

    return get


@pytest.fixture(scope="session")
def tiny_engines(tiny_model_dir, tmp_path_factory):
    """Return a function (family, precision) -> build.py output folder for that tiny model (cached)."""
    cache = {}

    def get(family: str = "qwen3", precision: str = "nvfp4"):
        if (family, precision) not in cache:
            out = tmp_path_factory.mktemp(f"engines-{family}-{precision}")
            build_engines(BuildOptions(model=tiny_model_dir(family), output=out, context_precision=precision,
                                       calib_samples=4, calib_seq_len=64, device="cpu"))
            cache[family, precision] = out
        return cache[family, precision]

    return get
