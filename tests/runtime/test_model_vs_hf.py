"""Our model's logits against Hugging Face transformers on tiny random configs."""

from __future__ import annotations

import pytest
import torch

from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.random_model import random_model
from trtllm_mixquant.runtime.batch import StepBatch
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.loader import load_causal_lm

from .reference import hf_model


def prefill(model, ids: torch.Tensor, dtype, block_size=4, blocks=(5, 1, 7, 2)) -> torch.Tensor:
    """Logits at every position of one sequence, written into non-contiguous KV blocks."""
    cfg = model.config
    layout = KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, str(dtype).removeprefix("torch."), block_size)
    kv = KVCache(layout, max(blocks) + 1, torch.device("cpu"))
    t = ids.shape[0]
    pos = torch.arange(t)
    table = torch.tensor([blocks])
    batch = StepBatch(ids, pos, table[0, pos // block_size] * block_size + pos % block_size, 0,
                      torch.tensor([0, t]), torch.tensor([t]), table, t, t, pos)
    with torch.no_grad():
        return model(batch, kv)


@pytest.mark.parametrize("family", ["qwen3", "qwen2", "llama"])
def test_fp32_logits_match_transformers(tiny_model_dir, family):
    ids = torch.randint(0, 256, (13,), generator=torch.Generator().manual_seed(1))
    ours = prefill(load_causal_lm(tiny_model_dir(family), dtype=torch.float32), ids, torch.float32)
    ref = hf_model(tiny_model_dir(family))(ids[None]).logits[0]
    assert (ours - ref).abs().max() < 1e-4


@pytest.mark.parametrize("family", ["qwen3", "llama"])
def test_bf16_logits_match_transformers(tiny_model_dir, family):
    """BF16 runs round differently (we rotate and normalise in fp32, HF rotates in bf16), so compare
    against the fp32 reference: the error must stay within what bf16 rounding of activations gives,
    here a few bf16 ulps (2^-8 relative) of the logit scale."""
    ids = torch.randint(0, 256, (13,), generator=torch.Generator().manual_seed(2))
    ours = prefill(load_causal_lm(tiny_model_dir(family), dtype=torch.bfloat16), ids, torch.bfloat16)
    ref = hf_model(tiny_model_dir(family))(ids[None]).logits[0]
    assert (ours - ref).abs().max() < 4 * 2 ** -8 * ref.abs().max()


def test_llama3_rope_scaling_matches_transformers(tmp_path):
    model = random_model("llama", vocab_size=320, dtype=torch.float32)
    model.config.rope_parameters = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 64}
    model.save_pretrained(tmp_path)
    ref_model = hf_model(tmp_path)
    ids = torch.randint(0, 256, (40,), generator=torch.Generator().manual_seed(3))
    ours = prefill(load_causal_lm(tmp_path, dtype=torch.float32), ids, torch.float32, blocks=tuple(range(10)))
    assert (ours - ref_model(ids[None]).logits[0]).abs().max() < 1e-4
