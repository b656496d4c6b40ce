"""The shipped model gives the same logits in our runtime as in Hugging Face transformers."""

from __future__ import annotations

import torch

from trtllm_mixquant.assets import DEFAULT_MODEL_DIR
from trtllm_mixquant.runtime.loader import load_causal_lm

from .reference import hf_model
from .test_model_vs_hf import prefill


def test_shipped_model_logits_match_transformers():
    ids = torch.randint(0, 8192, (300,), generator=torch.Generator().manual_seed(0))
    ours = prefill(load_causal_lm(DEFAULT_MODEL_DIR, dtype=torch.float32), ids, torch.float32,
                   block_size=32, blocks=tuple(range(9, -1, -1)))
    ref = hf_model(DEFAULT_MODEL_DIR)(ids[None]).logits[0]
    assert (ours - ref).abs().max() < 1e-4
