from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from trtllm_mixquant.agent_tasks import generate_tasks
from trtllm_mixquant.training import evaluate
from trtllm_mixquant.training.evaluate import greedy_replies, gzip_bits_per_byte, model_bits_per_byte
from trtllm_mixquant.training.model import ModelDims, build_model

DIMS = ModelDims(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=32,
                 max_position_embeddings=2048)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    model = build_model(DIMS, tokenizer.get_vocab_size(), tokenizer.token_to_id("<|im_end|>"), 0)
    with torch.no_grad():  # large random weights: replies differ from prompt to prompt
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.5)
    return model.eval()


def test_gzip_bits_per_byte():
    assert gzip_bits_per_byte("a" * 100_000) < 0.05
    rng = random.Random(0)
    assert 4 < gzip_bits_per_byte("".join(rng.choice("abcdefghijklmnop") for _ in range(100_000))) < 6


def test_bits_per_byte_counts_every_token_once(model, tokenizer, code_texts):
    text = code_texts[0][:3000]
    ids = tokenizer.encode(text).ids
    assert len(ids) < 2047
    with torch.no_grad():
        full = torch.tensor([[0] + ids])
        nll = F.cross_entropy(model(input_ids=full[:, :-1]).logits[0].float(), full[0, 1:], reduction="sum")
    expected = nll.item() / math.log(2) / len(text.encode())
    assert model_bits_per_byte(model, tokenizer, text, seq_len=2048) == pytest.approx(expected, rel=1e-4)
    # Windows shorter than the text still predict every token exactly once.
    assert model_bits_per_byte(model, tokenizer, text, seq_len=256) > 0


def test_batched_greedy_equals_one_by_one(model, tokenizer):
    prompts = ["def add(a, b):\n    return", "import torch\n", "x = [1, 2, 3]\nfor i in x:\n    print(i)\n" * 3]
    batched = greedy_replies(model, tokenizer, prompts, max_new_tokens=8)
    single = [greedy_replies(model, tokenizer, [p], max_new_tokens=8)[0] for p in prompts]
    assert batched == single and len(set(batched)) > 1


def test_agent_accuracy_accounting(model, tokenizer, monkeypatch):
    tasks = generate_tasks("acc", 0, 4, 1200) + generate_tasks("acc", 0, 2, 2000)
    monkeypatch.setattr(evaluate, "greedy_replies",
                        lambda m, t, prompts, *a, **k: [_target_for(tasks, p) for p in prompts])
    report = evaluate.agent_accuracy(model, tokenizer, tasks)
    assert set(report) == {1200, 2000}
    assert report[1200]["tasks"] == 4 and report[1200]["accuracy"] == 1.0 and report[1200]["task_accuracy"] == 1.0
    monkeypatch.setattr(evaluate, "greedy_replies", lambda m, t, prompts, *a, **k: ["no"] * len(prompts))
    assert evaluate.agent_accuracy(model, tokenizer, tasks)[2000]["accuracy"] == 0.0


def _target_for(tasks, prompt):
    from trtllm_mixquant.agent_tasks import render_chat

    for task in tasks:
        for dp in task.decision_points:
            if render_chat(dp.messages, task.tools, add_generation_prompt=True) == prompt:
                return dp.target_text
    raise AssertionError("unknown prompt")
