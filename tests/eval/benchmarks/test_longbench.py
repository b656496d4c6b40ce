"""LongBench v2 middle truncation: head and tail kept, the token budget respected."""

from __future__ import annotations

import pytest

from tests.eval.benchmarks import fixtures as fx
from trtllm_mixquant.eval.benchmarks import TokenCodec, load_benchmark
from trtllm_mixquant.eval.benchmarks.longbench import truncate_middle

WORDS = TokenCodec(lambda text: text.split(" "), lambda ids: " ".join(ids))  # one token per word


def test_truncate_middle_keeps_head_and_tail():
    text = " ".join(f"w{i}" for i in range(100))
    cut = truncate_middle(text, 10, WORDS)
    assert cut.split(" ") == ["w0", "w1", "w2", "w3", "w4", "w95", "w96", "w97", "w98", "w99"]
    assert truncate_middle(text, 100, WORDS) == text
    assert truncate_middle(text, 11, WORDS).split(" ")[:5] == ["w0", "w1", "w2", "w3", "w4"]


def test_truncate_middle_respects_the_budget_when_decoding_adds_tokens():
    chars = TokenCodec(lambda text: list(text), lambda ids: "".join(ids) + "~")  # each decode adds one token
    cut = truncate_middle("abcdefghijklmnopqrstuvwxyz", 10, chars)
    assert len(chars.encode(cut)) <= 10 and cut.startswith("abcd") and cut.endswith("wxyz~")


@pytest.mark.parametrize("budget", [60, 120, 200])
def test_longbench_prompts_fit_the_budget(tmp_path, budget):
    path = fx.write_json(tmp_path / "data.json", fx.LONGBENCH_V2)
    items = load_benchmark("longbench_v2", path, codec=WORDS, max_prompt_tokens=budget)
    for item in items:
        prompt = item.messages[0]["content"]
        assert len(WORDS.encode(prompt)) <= budget
        assert "What is the correct answer to this question" in prompt and "(D) " in prompt
    long_prompt = items[0].messages[0]["content"]
    assert "<text>\nHEAD" in long_prompt and "TAIL\n</text>" in long_prompt
    assert items[1].messages == load_benchmark("longbench_v2", path)[1].messages  # short contexts stay whole


def test_longbench_budget_errors(tmp_path):
    path = fx.write_json(tmp_path / "data.json", fx.LONGBENCH_V2)
    with pytest.raises(ValueError, match="question and choices alone exceed 20 tokens"):
        load_benchmark("longbench_v2", path, codec=WORDS, max_prompt_tokens=20)
    with pytest.raises(ValueError, match="needs a token codec"):
        load_benchmark("longbench_v2", path, max_prompt_tokens=100)
