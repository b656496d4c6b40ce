"""Parse a reply's function calls and check them with BFCL's AST-checker rules.

A call is right when: its name is the expected function's (or its dot-free tool name); every
required argument is present; every argument is declared and has allowed values; its type is the
declared one (an int passes for a float, as BFCL allows Python to convert); its value is one of the
allowed values (strings compared without case, spaces and `,./-_*^`); and every allowed argument it
leaves out lists "" (optional). The number of calls must match the ground truth; several expected
calls (parallel) are matched in any order.
"""

from __future__ import annotations

import json
import re
from typing import Any

from trtllm_mixquant.eval.benchmarks.bfcl import tool_name

ToolCall = tuple[str, dict[str, Any]]
_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "float": (float,), "number": (int, float), "boolean": (bool,),
    "array": (list,), "tuple": (list,), "dict": (dict,), "object": (dict,),
}


def parse_tool_calls(text: str, tool_calls: list[dict[str, Any]] | None = None) -> list[ToolCall] | None:
    """(name, arguments) of each call: from OpenAI-shaped `tool_calls` when given, else from the
    `<tool_call>{json}</tool_call>` blocks of `text`. None when a call is not well-formed."""
    raw: list[Any] = list(tool_calls or [])
    if not raw:
        try:
            raw = [json.loads(body) for body in _TOOL_CALL_RE.findall(text)]
        except json.JSONDecodeError:
            return None
    calls = []
    for call in raw:
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            return None
        name, args = fn.get("name"), fn.get("arguments", fn.get("parameters"))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return None
        if not isinstance(name, str) or not isinstance(args, dict):
            return None
        calls.append((name, args))
    return calls


def check_calls(calls: list[ToolCall], ground_truth: list[dict[str, Any]], functions: list[dict[str, Any]]) -> str:
    """Why the calls are wrong, or "" when they match the ground truth."""
    if len(calls) != len(ground_truth):
        return f"expected {len(ground_truth)} call(s), got {len(calls)}"
    docs = {f["name"]: f for f in functions}
    unmatched = list(range(len(calls)))
    for expected in ground_truth:
        (name, allowed), = expected.items()
        errors = [_check_call(calls[i], name, allowed, docs.get(name, {})) for i in unmatched]
        if "" not in errors:
            return errors[0]
        unmatched.pop(errors.index(""))
    return ""


def _check_call(call: ToolCall, name: str, allowed: dict[str, list], doc: dict[str, Any]) -> str:
    called, args = call
    if called not in (name, tool_name(name)):
        return f"called {called!r}, expected {name!r}"
    parameters = doc.get("parameters", {})
    declared = parameters.get("properties", {})
    for param in parameters.get("required", []):
        if param not in args:
            return f"missing required argument {param!r}"
    for param, value in args.items():
        if param not in declared or param not in allowed:
            return f"unexpected argument {param!r}"
        error = _check_value(param, value, allowed[param], declared[param])
        if error:
            return error
    for param, options in allowed.items():
        if param not in args and "" not in options:
            return f"argument {param!r} left out but not optional"
    return ""


def _check_value(param: str, value: Any, options: list, spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    value = _as_declared(value, kind)
    answer_type = next((type(o) for o in options if o != ""), None)
    if kind in _PY_TYPES and type(value) not in _PY_TYPES[kind] and type(value) is not answer_type:
        return f"argument {param!r} should be {kind}, got {type(value).__name__} {value!r}"
    item_kind = spec.get("items", {}).get("type") if isinstance(spec.get("items"), dict) else None
    if isinstance(value, list) and item_kind in _PY_TYPES:
        value = [_as_declared(v, item_kind) for v in value]
        if any(type(v) not in _PY_TYPES[item_kind] for v in value):
            return f"argument {param!r} should hold {item_kind} items, got {value!r}"
    if isinstance(value, dict):
        ok = any(_dict_matches(value, o) for o in options)
    elif isinstance(value, list) and item_kind in ("dict", "object"):
        ok = any(isinstance(o, list) and len(o) == len(value) and all(map(_dict_matches, value, o)) for o in options)
    else:
        ok = _standard(value) in [_standard(o) for o in options]
    return "" if ok else f"argument {param!r} = {value!r} is not one of {options!r}"


def _as_declared(value: Any, kind: str | None) -> Any:
    """An int where a float is declared becomes a float, as BFCL lets Python convert it."""
    return float(value) if kind == "float" and type(value) is int else value


def _dict_matches(value: Any, option: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(option, dict) or any(k not in option for k in value):
        return False
    if any(_standard(v) not in [_standard(o) for o in option[k]] for k, v in value.items()):
        return False
    return all(k in value or "" in allowed for k, allowed in option.items())


def _standard(value: Any) -> Any:
    """BFCL's string standardisation (no spaces or `,./-_*^`, lower case, ' as "), applied inside lists too."""
    if isinstance(value, str):
        return re.sub(r"[ ,./\-_*^]", "", value).lower().replace("'", '"')
    if isinstance(value, list):
        return [_standard(v) for v in value]
    return value
