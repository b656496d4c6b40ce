from __future__ import annotations

import json

import pytest

from trtllm_mixquant.builder.calibration import (
    CalibrationError, builtin_texts, calibration_batches, read_calibration_file)
from trtllm_mixquant.random_model import byte_tokenizer


def test_builtin_texts_cover_prose_chat_and_code():
    texts = builtin_texts(byte_tokenizer())
    assert len(texts) > 15
    assert any("<|im_start|>assistant" in t for t in texts)  # rendered with the chat template
    assert any("def " in t for t in texts)


def test_batches_have_the_requested_shape_and_repeat_short_streams():
    tok = byte_tokenizer()
    batches = calibration_batches(["abc"], tok, num_samples=3, seq_len=5)
    assert [tuple(b.shape) for b in batches] == [(1, 5)] * 3
    stream = [int(x) for b in batches for x in b[0]]
    eos = tok.eos_token_id
    assert stream[:8] == tok("abc")["input_ids"] + [eos] + tok("abc")["input_ids"] + [eos]


@pytest.mark.parametrize("suffix, content, expected", [
    (".txt", "first para\nstill first\n\nsecond\n\n\n", ["first para\nstill first", "second"]),
    (".jsonl", '{"text": "a"}\n"b"\n\n', ["a", "b"]),
    (".json", json.dumps(["x", {"text": "y"}]), ["x", "y"]),
])
def test_calibration_files(tmp_path, suffix, content, expected):
    path = tmp_path / f"calib{suffix}"
    path.write_text(content)
    assert read_calibration_file(path) == expected


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", "\n\n", "holds no text"),
    ("bad.jsonl", "{oops", "not valid JSON"),
    ("data.csv", "a,b", "must end in"),
])
def test_bad_calibration_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CalibrationError, match=message):
        read_calibration_file(path)
