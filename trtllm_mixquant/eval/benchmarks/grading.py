"""Graders: one per item kind, each reading the answer after any `</think>` and judging it."""

from __future__ import annotations

from collections.abc import Callable

from trtllm_mixquant.eval.benchmarks.bfcl_checker import check_calls, parse_tool_calls
from trtllm_mixquant.eval.benchmarks.choices import extract_choice
from trtllm_mixquant.eval.benchmarks.core import BenchmarkItem, Completion, Grade, final_reply
from trtllm_mixquant.eval.benchmarks.math_answers import extract_gsm8k_answer, extract_math_answer
from trtllm_mixquant.eval.benchmarks.math_equivalence import answers_equal, parse_value
from trtllm_mixquant.eval.benchmarks.math_normalize import normalize_answer

Grader = Callable[[BenchmarkItem, Completion], Grade]


def grade_math(item: BenchmarkItem, completion: Completion) -> Grade:
    """MATH500: the last boxed (or stated) answer, equivalent to the reference."""
    return _by_equivalence(extract_math_answer(final_reply(completion.text)), item.reference)


def grade_gsm8k(item: BenchmarkItem, completion: Completion) -> Grade:
    """GSM8K: boxed, `#### X`, stated or last number, equal to the reference number."""
    return _by_equivalence(extract_gsm8k_answer(final_reply(completion.text)), item.reference)


def _by_equivalence(answer: str | None, reference: str) -> Grade:
    return Grade(answer, answers_equal(answer, reference), "" if answer is not None else "no answer")


def grade_aime(item: BenchmarkItem, completion: Completion) -> Grade:
    """AIME: the answer must be an integer 0..999 equal to the reference (so `033` == `33`)."""
    answer = extract_math_answer(final_reply(completion.text))
    value = parse_value(normalize_answer(answer)) if answer is not None else None
    if value is None or not value.is_Integer or not 0 <= value <= 999:
        return Grade(answer, False, "no answer" if answer is None else "not an integer in 0..999")
    return Grade(answer, int(value) == int(item.reference))


def grade_choice(item: BenchmarkItem, completion: Completion) -> Grade:
    """Multiple choice: the extracted letter equals the reference letter."""
    letter = extract_choice(final_reply(completion.text))
    return Grade(letter, letter == item.reference, "" if letter else "no unambiguous choice")


def grade_bfcl(item: BenchmarkItem, completion: Completion) -> Grade:
    """Function calling: the calls pass BFCL's AST checks against the ground truth."""
    calls = parse_tool_calls(final_reply(completion.text), completion.tool_calls)
    if calls is None:
        return Grade(None, False, "malformed tool call")
    shown = "; ".join(f"{name}({args})" for name, args in calls) or None
    reason = check_calls(calls, item.reference["ground_truth"], item.reference["functions"])
    return Grade(shown, not reason, reason)


GRADERS: dict[str, Grader] = {"math": grade_math, "gsm8k": grade_gsm8k, "aime": grade_aime,
                              "choice": grade_choice, "bfcl": grade_bfcl}


def grade(item: BenchmarkItem, completion: Completion) -> Grade:
    """Grade a completion with its item's grader."""
    return GRADERS[item.kind](item, completion)
