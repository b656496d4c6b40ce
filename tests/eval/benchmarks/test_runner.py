"""The runner end to end over fixture items, with a fake client returning canned replies.

The fake stands in for the model on purpose: the unit under test is reading, grading and scoring.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.eval.benchmarks import fixtures as fx
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.eval.benchmarks import CallableClient, Completion, compare, load_benchmark, run_benchmark

PARAMS = SamplingParams(max_tokens=256, temperature=0.6, top_p=0.95)
# Canned replies by the problem they answer: two right (one in another notation), one wrong.
REPLIES = {
    fx.MATH500[0]["problem"]: r"Adding, $\boxed{0.5}$.",
    fx.MATH500[1]["problem"]: r"$\boxed{\dfrac{\sqrt3}{2}}$",
    fx.MATH500[2]["problem"]: r"$\boxed{(2, 1)}$",
}


def fake_model(messages, tools, params):
    time.sleep(random.random() * 0.01)  # finish out of order
    problem = messages[0]["content"].rsplit("\n", 1)[0]
    return REPLIES[problem]


@pytest.fixture
def math_items(tmp_path):
    return load_benchmark("math500", fx.write_jsonl(tmp_path / "test.jsonl", fx.MATH500 * 4))


@pytest.mark.parametrize("concurrency", [1, 4])
def test_math_run_scores_and_keeps_item_order(math_items, concurrency):
    result = run_benchmark(math_items, CallableClient(fake_model), PARAMS, concurrency=concurrency, seed=7,
                           progress=False, name="math500")
    assert [r.id for r in result.records] == [i.id for i in math_items]
    assert [r.correct for r in result.records] == [True, True, False] * 4
    assert [r.seed for r in result.records] == list(range(7, 7 + len(math_items)))
    assert result.records[0].extracted == "0.5" and result.records[2].extracted == "(2, 1)"
    acc = result.accuracy
    assert acc.value == pytest.approx(8 / 12) and (acc.n, acc.seed, acc.resamples) == (12, 7, 1000)
    assert acc.low <= acc.value <= acc.high and acc.high - acc.low > 0
    assert result.params["seed"] == 7 and result.params["temperature"] == 0.6
    assert result.to_dict()["records"][0]["meta"] == {"subject": "Prealgebra", "level": 1}
    assert set(result.accuracy_by("subject")) == {"Prealgebra", "Precalculus", "Algebra"}
    assert result.accuracy_by("subject")["Algebra"].value == 0.0


def test_failed_requests_are_recorded_and_count_as_wrong(math_items):
    def flaky(messages, tools, params):
        if params.seed % 3 == 0:
            raise ConnectionError("server went away")
        return Completion(REPLIES[messages[0]["content"].rsplit("\n", 1)[0]])

    result = run_benchmark(math_items, CallableClient(flaky), PARAMS, concurrency=3, progress=False)
    assert result.num_errors == 4
    assert result.records[0].error == "ConnectionError: server went away" and not result.records[0].correct
    assert result.accuracy.value == pytest.approx(4 / 12)


def test_runs_on_other_benchmarks_and_compares_modes(tmp_path):
    items = load_benchmark("longbench_v2", fx.write_json(tmp_path / "data.json", fx.LONGBENCH_V2))
    right = run_benchmark(items, CallableClient(lambda m, t, p: "The correct answer is (C)" if "revenue" in
                                                m[0]["content"] else "**A**"), PARAMS, progress=False)
    wrong = run_benchmark(items, CallableClient(lambda m, t, p: "The correct answer is (B)"), PARAMS, progress=False)
    assert right.accuracy.value == 1.0 and wrong.accuracy.value == 0.0
    difference = compare(right, wrong)
    assert difference.value == 1.0 and difference.n == 2
    with pytest.raises(ValueError, match="different items"):
        compare(right, run_benchmark(items[:1], CallableClient(lambda m, t, p: "A"), PARAMS, progress=False))


def test_bfcl_run_passes_tools(tmp_path):
    seen = []

    def caller(messages, tools, params):
        seen.append(tools[0]["function"]["name"])
        name = tools[0]["function"]["name"]
        args = {"base": 10, "height": 5} if name == "calculate_triangle_area" else {"x": 4, "y": 6}
        return Completion("", [{"type": "function", "function": {"name": name, "arguments": args}}])

    result = run_benchmark(load_benchmark("bfcl", fx.write_bfcl(tmp_path)), CallableClient(caller), PARAMS,
                           progress=False)
    assert seen == ["calculate_triangle_area", "math_hypot"]
    assert [r.correct for r in result.records] == [True, False]
    assert result.records[1].reason == "argument 'y' = 6 is not one of [5]"


def test_bad_arguments():
    with pytest.raises(ValueError, match="no items"):
        run_benchmark([], CallableClient(lambda m, t, p: ""), PARAMS)
    with pytest.raises(ValueError, match="concurrency"):
        run_benchmark([object()], CallableClient(lambda m, t, p: ""), PARAMS, concurrency=0)
