"""Reader for BFCL-style function calling (BFCL v3 "simple", "multiple" and "parallel" categories).

Questions: JSON lines of {"id", "question": [[chat messages of turn 1], ...], "function": [function
docs with BFCL types]}; older releases have a string question and a single function object.
Ground truth: a separate possible-answer file of {"id", "ground_truth": [{func_name: {arg: [allowed
values]}}]}, by default `possible_answer/<same name>` next to the questions, as BFCL ships them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from trtllm_mixquant.eval.benchmarks.core import BenchmarkItem, DatasetError, Message
from trtllm_mixquant.eval.benchmarks.files import pick, read_records

# BFCL's Python type names -> JSON-schema types of the OpenAI tool format.
_OPENAI_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": "string", "list": "array",
                 "bool": "boolean"}
QUESTION_SCHEMA = "BFCL question fields (id, question: list of turns of chat messages, function: list of docs)"
ANSWER_SCHEMA = "BFCL possible-answer fields (id, ground_truth: [{function name: {argument: [allowed values]}}])"


def read_bfcl(path: str | Path, answers_path: str | Path | None = None) -> list[BenchmarkItem]:
    """BFCL items: the user turns as messages, the functions as OpenAI tools, the ground truth as reference."""
    path = Path(path)
    answers_path = Path(answers_path) if answers_path else path.parent / "possible_answer" / path.name
    truths = {}
    for i, rec in enumerate(read_records(answers_path, ANSWER_SCHEMA)):
        where = f"{answers_path} record {i} ({ANSWER_SCHEMA})"
        truth = pick(rec, ("ground_truth",), where)
        truths[str(pick(rec, ("id",), where))] = truth if isinstance(truth, list) else [truth]
    items = []
    for i, rec in enumerate(read_records(path, QUESTION_SCHEMA)):
        where = f"{path} record {i} ({QUESTION_SCHEMA})"
        item_id = str(pick(rec, ("id",), where))
        if item_id not in truths:
            raise DatasetError(f"{where}: no ground truth for id {item_id!r} in {answers_path}")
        functions = pick(rec, ("function", "functions"), where)
        functions = functions if isinstance(functions, list) else [functions]
        items.append(BenchmarkItem(item_id, "bfcl", _messages(pick(rec, ("question",), where), where),
                                   {"ground_truth": truths[item_id], "functions": functions},
                                   tools=[openai_tool(f) for f in functions]))
    return items


def _messages(question: Any, where: str) -> list[Message]:
    """The chat of a BFCL question: a string, a list of messages, or a list of turns of messages."""
    if isinstance(question, str):
        return [{"role": "user", "content": question}]
    turns = question if question and isinstance(question[0], list) else [question]
    messages = [message for turn in turns for message in turn]
    if not messages or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
        raise DatasetError(f"{where}: 'question' must hold chat messages with role and content")
    return messages


def tool_name(name: str) -> str:
    """The name a function is offered under: OpenAI-style names allow no dots (`math.hypot` -> `math_hypot`)."""
    return name.replace(".", "_")


def openai_tool(function: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function doc as an OpenAI tool: {"type": "function", "function": {name, description, parameters}}."""
    parameters = _openai_schema(copy.deepcopy(function.get("parameters", {"type": "dict", "properties": {}})))
    return {"type": "function", "function": {"name": tool_name(function["name"]),
                                             "description": function.get("description", ""),
                                             "parameters": parameters}}


def _openai_schema(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str):
        schema["type"] = _OPENAI_TYPES.get(schema["type"], schema["type"])
    for sub in schema.get("properties", {}).values():
        _openai_schema(sub)
    if isinstance(schema.get("items"), dict):
        _openai_schema(schema["items"])
    return schema
