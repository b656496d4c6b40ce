"""BFCL function-call parsing and the AST-checker rules."""

from __future__ import annotations

import json

import pytest

from tests.eval.benchmarks import fixtures as fx
from trtllm_mixquant.eval.benchmarks.bfcl_checker import check_calls, parse_tool_calls
from trtllm_mixquant.eval.benchmarks.core import BenchmarkItem, Completion
from trtllm_mixquant.eval.benchmarks.grading import grade

TRIANGLE_TRUTH = fx.BFCL_ANSWERS[0]["ground_truth"]


def openai_call(name: str, args: dict) -> dict:
    return {"id": "call_0", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def triangle(args: dict) -> str:
    return check_calls([("calculate_triangle_area", args)], TRIANGLE_TRUTH, [fx.TRIANGLE_DOC])


@pytest.mark.parametrize("args, error", [
    ({"base": 10, "height": 5.0, "unit": "units"}, ""),
    ({"base": 10, "height": 5.0}, ""),  # optional argument left out ("" in its allowed values)
    ({"base": 10, "height": 5}, ""),  # an int for a float, as BFCL allows
    ({"base": 10, "height": 5.0, "unit": "Units"}, ""),  # strings compare without case
    ({"base": 12, "height": 5.0}, "argument 'base' = 12 is not one of [10]"),
    ({"base": 10, "height": 5.0, "unit": "cm"}, "argument 'unit' = 'cm' is not one of ['units', '']"),
    ({"base": 10}, "missing required argument 'height'"),
    ({"base": 10.0, "height": 5.0}, "argument 'base' should be integer, got float 10.0"),
    ({"base": 10, "height": 5.0, "color": "red"}, "unexpected argument 'color'"),
])
def test_argument_rules(args, error):
    assert triangle(args) == error


def test_allowed_argument_left_out_without_empty_marker_is_wrong():
    truth = [{"calculate_triangle_area": {"base": [10], "height": [5.0], "unit": ["units"]}}]
    error = check_calls([("calculate_triangle_area", {"base": 10, "height": 5.0})], truth, [fx.TRIANGLE_DOC])
    assert error == "argument 'unit' left out but not optional"


def test_function_name_and_count():
    assert check_calls([("calculate_circle_area", {"base": 10, "height": 5.0})], TRIANGLE_TRUTH,
                       [fx.TRIANGLE_DOC]).startswith("called 'calculate_circle_area'")
    assert check_calls([], TRIANGLE_TRUTH, [fx.TRIANGLE_DOC]) == "expected 1 call(s), got 0"
    hypot = fx.BFCL_ANSWERS[1]["ground_truth"]
    assert check_calls([("math_hypot", {"x": 4, "y": 5})], hypot, [fx.HYPOT_DOC]) == ""  # the dot-free tool name
    assert check_calls([("math.hypot", {"x": 4, "y": 5})], hypot, [fx.HYPOT_DOC]) == ""


def test_parallel_calls_match_in_any_order():
    truth = [{"math.hypot": {"x": [4], "y": [5]}}, {"math.hypot": {"x": [3], "y": [4]}}]
    calls = [("math.hypot", {"x": 3, "y": 4}), ("math.hypot", {"x": 4, "y": 5})]
    assert check_calls(calls, truth, [fx.HYPOT_DOC]) == ""
    assert check_calls(calls[:1] * 2, truth, [fx.HYPOT_DOC]) != ""


def test_parse_calls_from_openai_objects_and_text():
    assert parse_tool_calls("", [openai_call("f", {"a": 1})]) == [("f", {"a": 1})]
    text = ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
            '<tool_call>{"name": "g", "arguments": {}}</tool_call>')
    assert parse_tool_calls(text) == [("f", {"a": 1}), ("g", {})]
    assert parse_tool_calls("no calls") == []
    assert parse_tool_calls("<tool_call>{not json}</tool_call>") is None
    assert parse_tool_calls("", [{"function": {"name": "f", "arguments": "{bad"}}]) is None


@pytest.mark.parametrize("completion, correct, reason", [
    (Completion("", [openai_call("calculate_triangle_area", {"base": 10, "height": 5})]), True, ""),
    (Completion('<think>x</think><tool_call>\n{"name": "calculate_triangle_area", '
                '"arguments": {"base": 10, "height": 5.0}}\n</tool_call>'), True, ""),
    (Completion("", [openai_call("calculate_triangle_area", {"base": 10, "height": 6})]), False,
     "argument 'height' = 6.0 is not one of [5.0]"),
    (Completion("The area is 25."), False, "expected 1 call(s), got 0"),
    (Completion("<tool_call>{oops</tool_call>"), False, "malformed tool call"),
])
def test_bfcl_grader(completion, correct, reason):
    item = BenchmarkItem("simple_0", "bfcl", [], {"ground_truth": TRIANGLE_TRUTH, "functions": [fx.TRIANGLE_DOC]})
    verdict = grade(item, completion)
    assert (verdict.correct, verdict.reason) == (correct, reason)
