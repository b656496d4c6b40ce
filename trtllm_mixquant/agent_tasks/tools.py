"""The tool suite the synthetic agents use: OpenAI-style schemas and the calculator's exact arithmetic."""

from __future__ import annotations

import ast
from decimal import Decimal

SYSTEM_PROMPT = (
    "You are a careful assistant. Use the tools to find facts; copy values from tool results exactly."
)

TOOLS: list[dict] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Fetch the page of a table that holds the row with the given key.",
            "parameters": {
                "type": "object",
                "properties": {
                    "table": {"type": "string", "enum": ["inventory", "employees", "accounts", "routes"]},
                    "key": {"type": "string"},
                },
                "required": ["table", "key"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression exactly (+, -, *, /, parentheses).",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "order",
            "description": "Place an order: one line per SKU, with its units and its unit price as written in "
                           "the inventory table.",
            "parameters": {
                "type": "object",
                "properties": {
                    "lines": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"sku": {"type": "string"}, "units": {"type": "integer"},
                                           "unit_price": {"type": "string"}},
                            "required": ["sku", "units", "unit_price"],
                        },
                    },
                },
                "required": ["lines"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the project report and return the best-matching passages.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    },
]

_OPS = {ast.Add: Decimal.__add__, ast.Sub: Decimal.__sub__, ast.Mult: Decimal.__mul__, ast.Div: Decimal.__truediv__}


def calculate(expression: str) -> str:
    """Evaluate `expression` in exact decimal arithmetic, e.g. "37.25 * 7" -> "260.75"."""

    def value(node: ast.expr) -> Decimal:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Decimal(ast.get_source_segment(expression, node))
        raise ValueError(f"unsupported expression: {expression!r}")

    return format(value(ast.parse(expression, mode="eval").body), "f")
