"""The shipped checkpoint: loadable, as documented, and trained (it solves held-out agent tasks on CPU)."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from trtllm_mixquant.agent_tasks import TOOLS, generate_tasks, render_chat
from trtllm_mixquant.assets import DEFAULT_MODEL_DIR
from trtllm_mixquant.training.evaluate import agent_accuracy
from trtllm_mixquant.training.tokenizer import CONTROL_TOKENS, MARKUP_TOKENS


@pytest.fixture(scope="module")
def model():
    # fp32: CPUs without BF16 matrix instructions emulate BF16 GEMMs (105 s here against seconds)
    return AutoModelForCausalLM.from_pretrained(DEFAULT_MODEL_DIR, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_file(str(DEFAULT_MODEL_DIR / "tokenizer.json"))


def test_folder_is_a_small_standard_checkpoint():
    files = {p.name: p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir()}
    expected = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "README.md"}
    assert expected <= set(files)
    weights = {n: s for n, s in files.items() if n.endswith(".safetensors")}
    assert weights and sum(weights.values()) <= 40_000_000
    assert max(files.values()) < 15 * 2 ** 20
    index = json.loads((DEFAULT_MODEL_DIR / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(weights)


def test_config_is_as_documented():
    config = AutoConfig.from_pretrained(DEFAULT_MODEL_DIR)
    assert config.architectures == ["Qwen3ForCausalLM"] and config.model_type == "qwen3"
    assert config.hidden_size % 64 == 0 and config.intermediate_size % 64 == 0
    assert config.max_position_embeddings >= 2048
    assert config.vocab_size == Tokenizer.from_file(str(DEFAULT_MODEL_DIR / "tokenizer.json")).get_vocab_size()
    metrics = json.loads((DEFAULT_MODEL_DIR / "training_metrics.json").read_text())
    card = (DEFAULT_MODEL_DIR / "README.md").read_text()
    assert f"{metrics['eval']['bpb']['model']:.3f}" in card and f"{metrics['train']['steps']} steps" in card


def test_tokenizer_and_chat_template(tokenizer):
    hf = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
    for token in CONTROL_TOKENS + MARKUP_TOKENS:
        assert len(tokenizer.encode(token).ids) == 1
    task = generate_tasks("asset", 0, 1, 1200)[0]
    assert hf.apply_chat_template(task.messages, tools=TOOLS, tokenize=False) == render_chat(task.messages, TOOLS)


def test_solves_held_out_agent_tasks(model, tokenizer):
    count = lambda text: len(tokenizer.encode(text).ids)  # noqa: E731
    tasks = generate_tasks("asset-test", 0, 4, 1024, count)  # 10 decision points
    report = agent_accuracy(model, tokenizer, tasks, max_new_tokens=48)[1024]
    assert report["accuracy"] >= 0.7, report  # 0.8 for the shipped model; random weights score 0
