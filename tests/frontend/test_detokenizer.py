"""Incremental detokenization and stop strings: streamed pieces add up to the whole text."""

from __future__ import annotations

import random

import pytest

from trtllm_mixquant.random_model import byte_tokenizer
from trtllm_mixquant.frontend.detokenizer import Detokenizer, hidden_token_ids
from trtllm_mixquant.frontend.text_match import StopStrings, partial_match_len


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


def stream(tokenizer, ids: list[int], step: int = 1) -> list[str]:
    detok = Detokenizer(tokenizer, hidden_token_ids(tokenizer))
    pieces = [detok.push(ids[i:i + step]) for i in range(0, len(ids), step)]
    return pieces + [detok.flush()]


def test_multibyte_characters_split_across_byte_tokens_are_held_back(tokenizer):
    text = "héllo 中文 🙂<tool_call>{}</tool_call><|im_start|>x<think>y</think>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = stream(tokenizer, ids)
    assert "".join(pieces) == "héllo 中文 🙂<tool_call>{}</tool_call>x<think>y</think>"
    assert "\ufffd" not in "".join(pieces) and "🙂" in pieces  # emitted whole, once its 4th byte arrived


@pytest.mark.parametrize("seed", range(5))
def test_random_ids_concatenate_to_the_full_decode(tokenizer, seed):
    rng = random.Random(seed)
    hidden = hidden_token_ids(tokenizer)
    ids = [rng.randrange(len(tokenizer)) for _ in range(300)]
    full = tokenizer.decode([i for i in ids if i not in hidden])
    for step in (1, 3):
        assert "".join(stream(tokenizer, ids, step)) == full


def test_special_tokens_are_hidden_except_the_markers(tokenizer):
    hidden = {tokenizer.convert_ids_to_tokens(i) for i in hidden_token_ids(tokenizer)}
    assert hidden == {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}


def test_partial_match_len():
    assert partial_match_len("abc<too", ["<tool_call>"]) == 4
    assert partial_match_len("abc<", ["<tool_call>", "<think>"]) == 1
    assert partial_match_len("abc", ["<tool_call>"]) == 0
    assert partial_match_len("<tool_call>", ["<tool_call>"]) == 0  # whole matches are the caller's business


def run_stops(pieces: list[str], stop: list[str]) -> tuple[str, bool]:
    s = StopStrings(stop)
    out = "".join(s.push(p) for p in pieces)
    return out + s.flush(), s.hit


@pytest.mark.parametrize("text,stop,expected", [
    ("hello world. bye", ["."], ("hello world", True)),
    ("hello world. bye", ["wor", "lo"], ("hel", True)),
    ("hello wo", ["world"], ("hello wo", False)),
    ("a\n\nb", ["\n\n"], ("a", True)),
])
def test_stop_strings_cut_at_the_first_occurrence_however_split(text, stop, expected):
    assert run_stops([text], stop) == expected
    assert run_stops(list(text), stop) == expected
    for i in range(1, len(text)):
        assert run_stops([text[:i], text[i:]], stop) == expected


def test_text_that_may_start_a_stop_string_is_held_back():
    s = StopStrings(["STOP"])
    assert s.push("abc ST") == "abc "
    assert s.push("O") == ""
    assert s.push("x") == "STOx"
