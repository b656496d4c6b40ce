"""Multiple-choice letter extraction and the LongBench v2 grader."""

from __future__ import annotations

import pytest

from trtllm_mixquant.eval.benchmarks.choices import extract_choice
from trtllm_mixquant.eval.benchmarks.core import BenchmarkItem, Completion
from trtllm_mixquant.eval.benchmarks.grading import grade


@pytest.mark.parametrize("reply, letter", [
    ("**B**", "B"),
    ("The correct answer is (C).", "C"),
    ("answer: d", "D"),
    ("The correct answer is **(A)**", "A"),
    ("After reading the text, the answer is B", "B"),
    ("Final answer: (b)", "B"),
    ("(c)", "C"),
    ("D.", "D"),
    ("The answer is a little unclear, but (B) fits best.", "B"),
    ("I cannot tell from the text.", None),
    ("", None),
    ("The correct answer is (A) or (B).", None),
    ("**A** is tempting, but **C** is supported.", None),
])
def test_extract_choice(reply, letter):
    assert extract_choice(reply) == letter


def test_choice_grader_reads_after_thinking():
    item = BenchmarkItem("q", "choice", [], "C")
    thinking = "<think>maybe (A)? The correct answer is (A)</think>"
    assert grade(item, Completion(thinking + "The correct answer is (C)")).correct
    verdict = grade(item, Completion("No idea."))
    assert (verdict.extracted, verdict.correct, verdict.reason) == (None, False, "no unambiguous choice")
