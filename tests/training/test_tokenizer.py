from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from trtllm_mixquant.agent_tasks import TOOLS, generate_tasks, render_chat
from trtllm_mixquant.training.tokenizer import CONTROL_TOKENS, MARKUP_TOKENS


def test_vocab_size_and_special_tokens_are_single_ids(tokenizer):
    assert tokenizer.get_vocab_size() == 1024
    ids = [tokenizer.token_to_id(t) for t in CONTROL_TOKENS + MARKUP_TOKENS]
    assert None not in ids and len(set(ids)) == len(ids)
    for token, token_id in zip(CONTROL_TOKENS + MARKUP_TOKENS, ids):
        assert tokenizer.encode(f"x{token}y").ids.count(token_id) == 1


def test_round_trip(tokenizer, code_texts, transcripts):
    for text in code_texts[:20] + transcripts[:5] + ["héllo wörld ✓ 😀\n\t  x = 1\r\n"]:
        assert tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) == text


def test_digits_are_single_tokens(tokenizer):
    assert tokenizer.encode("x = 90210").tokens[-5:] == list("90210")


def test_hf_tokenizer_loads_with_eos_and_pad(tokenizer_dir):
    hf = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert hf.eos_token == "<|im_end|>" and hf.pad_token == "<|endoftext|>"
    assert hf.decode(hf("<tool_call>\n{}")["input_ids"]) == "<tool_call>\n{}"


_EDGE_CASES = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
     {"role": "assistant", "content": "let me check", "tool_calls": [
         {"type": "function", "function": {"name": "lookup", "arguments": {"table": "t", "key": "k"}}},
         {"type": "function", "function": {"name": "search", "arguments": '{"query": "q"}'}}]},
     {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"},
     {"role": "assistant", "content": "ok"}, {"role": "user", "content": "thanks"}],
]


@pytest.mark.parametrize("tools", [None, TOOLS])
@pytest.mark.parametrize("generation_prompt", [False, True])
def test_chat_template_equals_renderer(tokenizer_dir, tools, generation_prompt):
    hf = AutoTokenizer.from_pretrained(tokenizer_dir)
    conversations = list(_EDGE_CASES)
    for task in generate_tasks("template", 0, 9, 1500):
        conversations += [dp.messages for dp in task.decision_points] + [task.messages]
    for messages in conversations:
        expected = render_chat(messages, tools, add_generation_prompt=generation_prompt)
        got = hf.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt)
        assert got == expected
