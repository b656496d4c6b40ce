"""The whole recipe at a microscopic size on CPU: corpus, transcripts, tokenizer, training, evaluation, export."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from trtllm_mixquant.training.recipe import PRESETS, run_recipe
from trtllm_mixquant.training.train import _lr_factor

pytestmark = pytest.mark.slow  # trains a model for a minute


def test_smoke_recipe_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "model"
    metrics = run_recipe(out, seed=0, time_budget_s=60, cfg=PRESETS["smoke"])
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "README.md", "training_metrics.json"} <= names
    assert any(n.endswith(".safetensors") for n in names)
    assert all(p.stat().st_size < 15 * 2 ** 20 for p in out.iterdir())
    assert metrics["train"]["steps"] == 3 and metrics["eval"]["bpb"]["gzip"] > 0
    assert json.loads((out / "training_metrics.json").read_text())["seed"] == 0
    card = (out / "README.md").read_text()
    assert f"{metrics['eval']['bpb']['model']:.3f}" in card and "networkx" in card
    config = AutoConfig.from_pretrained(out)
    assert config.model_type == "qwen3" and config.max_position_embeddings == 1024
    model = AutoModelForCausalLM.from_pretrained(out)
    assert str(model.dtype) == "torch.bfloat16"
    assert AutoTokenizer.from_pretrained(out).eos_token == "<|im_end|>"


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    factors = [_lr_factor(s, warmup=10, total=100, min_ratio=0.1) for s in range(100)]
    assert factors[0] == 0.1 and factors[9] == 1.0
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert abs(_lr_factor(100, 10, 100, 0.1) - 0.1) < 1e-9
