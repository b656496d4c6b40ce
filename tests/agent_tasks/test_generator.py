from __future__ import annotations

import json
import re

import pytest

from trtllm_mixquant.agent_tasks import (
    FAMILIES, approx_token_count, calculate, generate_task, generate_tasks, render_chat,
)


def _calls(task):
    return [(m["tool_calls"][0]["function"]["name"], json.loads(m["tool_calls"][0]["function"]["arguments"]))
            for m in task.messages if m.get("tool_calls")]


def _results(task):
    return [m["content"] for m in task.messages if m["role"] == "tool"]


def test_same_seed_same_task():
    assert generate_task("s:1", 2000).messages == generate_task("s:1", 2000).messages


def test_held_out_seeds_give_other_tasks():
    train = {json.dumps(t.messages) for t in generate_tasks("train", 0, 150, 1200)}
    other_seed = {json.dumps(t.messages) for t in generate_tasks("train", 1, 150, 1200)}
    held_out = {json.dumps(t.messages) for t in generate_tasks("eval", 0, 150, 1200)}
    assert len(train) == 150 and not train & held_out and not train & other_seed


@pytest.mark.parametrize("budget", [1200, 2000, 4096])
def test_budget_is_kept_and_filled(budget):
    for task in generate_tasks("budget", 0, 30, budget):
        used = approx_token_count(render_chat(task.messages, task.tools))
        bare = generate_task(task.seed, 0)  # no distractors: a long chain or order may not fit a small budget
        if approx_token_count(render_chat(bare.messages, bare.tools)) > budget:
            assert used == approx_token_count(render_chat(bare.messages, bare.tools))
            continue
        assert used <= budget
        assert used > budget - 200  # short by at most one row or passage per long result


def test_all_families_occur_and_decision_points_cover_assistant_turns():
    tasks = generate_tasks("fam", 0, 60, 1000)
    assert {t.family for t in tasks} == set(FAMILIES)
    for task in tasks:
        points = task.decision_points
        assert [dp.kind for dp in points][-1] == "answer"
        assert all(dp.kind == "tool_call" for dp in points[:-1])
        assert all(dp.is_correct(dp.target_text) for dp in points)


def _key_row(result: str, key: str) -> str:
    rows = [line for line in result.splitlines() if f'"{key}"' in line]
    assert len(rows) == 1, "the key's row appears exactly once"
    return rows[0]


def test_answers_are_in_the_tool_results():
    for task in generate_tasks("answers", 0, 90, 2500):
        question = task.messages[1]["content"]
        steps = list(zip(_calls(task), _results(task)))
        if task.family == "lookup":
            [((_, args), result)] = steps
            value = task.answer.removesuffix(".").split(" is ")[-1]
            assert args["key"] in question
            assert re.search(rf': "?{re.escape(value)}"?[,}}]', _key_row(result, args["key"]))
        elif task.family == "search":
            [((_, args), result)] = steps
            name = args["query"].split()[1]
            fact = re.search(r"(?:led by|started in|based in|project \S+ was) (.+?)(?: credits)?\.$", task.answer)[1]
            assert name in question
            assert any(name in line and fact in line for line in result.splitlines()[1:])
        elif task.family == "chain":
            rows = [_key_row(r, args["key"]) for (_, args), r in steps]
            keys = [args["key"] for (_, args), _ in steps]
            assert keys[0] in question and len(keys) == task.size
            assert all(f'"next": "{k}"' in row for row, k in zip(rows, keys[1:]))  # each hop follows the last
            names = [re.search(r'"name": "([^"]+)"', row)[1] for row in rows]
            assert task.answer == "The route is " + ", ".join(f"{k} {n}" for k, n in zip(keys, names)) + "."
        elif task.family == "order":
            *lookups, ((name, order), result) = steps
            assert name == "order" and len(order["lines"]) == len(lookups) == task.size
            for line, ((_, args), page) in zip(order["lines"], lookups):
                assert line["sku"] == args["key"] and f'{line["units"]} units of {line["sku"]}' in question
                assert f'"price": {line["unit_price"]},' in _key_row(page, args["key"])
            assert result.startswith("Order ORD-") and task.answer.startswith(f"Order {result.split()[1]} is placed")
        else:
            *lookups, ((_, calc), result) = steps
            rows = [_key_row(r, args["key"]) for (_, args), r in lookups]
            assert result == calculate(calc["expression"]) and task.answer.endswith(f" {result}.")
            for operand in re.findall(r"\d+(?:\.\d+)?", calc["expression"]):
                assert any(f": {operand}," in row or f": {operand}}}" in row for row in rows) or operand in question


def test_long_results_hold_many_distractors():
    task = generate_task("long:0", 4096, family="lookup")
    (result,) = _results(task)
    assert len(result.splitlines()) > 40


def test_calculator_is_exact_and_safe():
    assert calculate("37.25 * 7") == "260.75"
    assert calculate("(1 + 2) * 3 - 10") == "-1"
    assert calculate("0.1 + 0.2") == "0.3"
    with pytest.raises(ValueError):
        calculate("__import__('os').system('true')")


def test_long_output_families_span_their_sizes_and_can_be_asked_for():
    from trtllm_mixquant.agent_tasks import LONG_FAMILIES

    tasks = generate_tasks("long-families", 0, 40, 1500, families=LONG_FAMILIES)
    assert [t.family for t in tasks[:4]] == ["chain", "order", "chain", "order"]
    assert {t.size for t in tasks} == set(range(2, 7))
    longest = max(tasks, key=lambda t: len(t.decision_points[-2].target_text) if t.family == "order" else 0)
    assert len(longest.decision_points[-2].target_text) > 250  # an order call with many lines is long
