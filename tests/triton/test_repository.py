"""The Triton model repository and the translation of its tensors (no server needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trtllm_mixquant.errors import InvalidRequest
from trtllm_mixquant.triton.repository import write_repository
from trtllm_mixquant.triton.tensors import parse

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_repository_is_what_triton_repo_writes(tmp_path):
    committed = ROOT / "triton_repo"
    written = write_repository(tmp_path / "engines" / "tiny-agent", tmp_path / "triton_repo",
                               {"topology": "colocated", "mode": "mixquant", "dtype": "auto", "device": "auto"})
    files = sorted(p.relative_to(written) for p in written.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and p.name != "README.md")
    assert all((written / f).read_text() == (committed / f).read_text() for f in files)


def tensors(**values):
    return {k: np.array([[v.encode() if isinstance(v, str) else v]], dtype=object if isinstance(v, str) else None)
            for k, v in values.items()}


def test_bls_inputs_become_a_request():
    req = parse(tensors(text_input="hi", max_tokens=np.int32(5), temperature=np.float32(0.5), top_k=np.int32(3),
                        seed=np.uint64(7), stream=True, mixquant_mode="bf16", exclude_input_in_output=True,
                        end_id=np.int32(2), presence_penalty=np.float32(0.5), frequency_penalty=np.float32(0.25),
                        repetition_penalty=np.float32(1.5)) | {"stop_words": np.array([[b"x", b""]], dtype=object)})
    assert (req.text, req.mode, req.stream, req.exclude_input) == ("hi", "bf16", True, True)
    p = req.params
    assert (p.max_tokens, p.temperature, p.top_k, p.seed, p.stop, p.stop_token_ids) == (5, 0.5, 3, 7, ["x"], [2])
    assert (p.presence_penalty, p.frequency_penalty, p.repetition_penalty) == (0.5, 0.25, 1.5)


@pytest.mark.parametrize("values, words", [
    ({"max_tokens": np.int32(5)}, "text_input is required"),
    ({"text_input": "a"}, "max_tokens is required"),
    ({"text_input": "a", "max_tokens": np.int32(0)}, "max_tokens must be at least 1"),
    ({"text_input": "a", "max_tokens": np.int32(2), "seed": np.uint64(2**64 - 1)}, "seed must be a 64-bit"),
    ({"text_input": "a", "max_tokens": np.int32(2), "beam_width": np.int32(4)}, "beam_width=4 is not supported"),
    ({"text_input": "a", "max_tokens": np.int32(2), "bad_words": "b"}, "bad_words is not supported"),
    ({"text_input": "a", "max_tokens": np.int32(2), "repetition_penalty": np.float32(3)}, "repetition_penalty must be"),
    ({"text_input": "a", "max_tokens": np.int32(2), "lora_task_id": np.uint64(1)}, "unknown inputs: lora_task_id"),
])
def test_bad_inputs_are_refused(values, words):
    with pytest.raises(InvalidRequest, match=words):
        parse(tensors(**values))


def test_text_input_must_be_utf8():
    with pytest.raises(InvalidRequest, match="not valid UTF-8"):
        parse({"text_input": np.array([[b"\xff"]], dtype=object), "max_tokens": np.array([[2]], dtype=np.int32)})
