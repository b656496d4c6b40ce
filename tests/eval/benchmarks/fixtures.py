"""Hand-made records in each benchmark's published schema, and writers for JSON, JSON lines and Parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MATH500 = [
    {"problem": r"What is $\frac{1}{4} + \frac{1}{4}$?", "solution": r"$\boxed{\frac{1}{2}}$",
     "answer": r"\frac{1}{2}", "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
    {"problem": r"Compute $\cos 30^\circ$.", "solution": r"$\boxed{\frac{\sqrt{3}}{2}}$",
     "answer": r"\frac{\sqrt{3}}{2}", "subject": "Precalculus", "level": 2, "unique_id": "test/precalculus/2.json"},
    {"problem": "Where do $y=x+1$ and $y=2x$ meet?", "solution": r"$\boxed{(1, 2)}$", "answer": "(1,2)",
     "subject": "Algebra", "level": 2, "unique_id": "test/algebra/3.json"},
]
AIME2024_MAXWELL = [{"ID": "2024-I-1", "Problem": "Find $m+n$.", "Solution": "...", "Answer": 33},
                    {"ID": "2024-I-2", "Problem": "Find $xy$.", "Solution": "...", "Answer": 25}]
AIME2025_OPENCOMPASS = [{"question": "Find the sum of all bases.", "answer": "70"}]
AIME2025_YENTINGLIN = [{"id": 0, "problem": "Find the sum of all bases.", "answer": "70", "year": 2025}]
GSM8K = [
    {"question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in total?",
     "answer": "In May she sold 48/2 = <<48/2=24>>24.\nIn total 48+24 = <<48+24=72>>72.\n#### 72"},
    {"question": "A ship carries 1,000 crates twice. How many crates?", "answer": "2 * 1,000 = 2,000\n#### 2,000"},
]
LONGBENCH_V2 = [
    {"_id": "66f36490821e116aacb2cc22", "domain": "Single-Document QA", "sub_domain": "Financial",
     "difficulty": "easy", "length": "short", "question": "Which year had the highest revenue?",
     "choice_A": "2019", "choice_B": "2020", "choice_C": "2021", "choice_D": "2022", "answer": "C",
     "context": "HEAD " + "filler " * 200 + "TAIL"},
    {"_id": "66ebed525a08c7b9b35e1cb4", "domain": "Code Repository Understanding", "sub_domain": "Code repo QA",
     "difficulty": "hard", "length": "long", "question": "What does main() do first?",
     "choice_A": "parse args", "choice_B": "open a socket", "choice_C": "log", "choice_D": "exit",
     "answer": "A", "context": "def main():\n    args = parse()\n"},
]
TRIANGLE_DOC = {
    "name": "calculate_triangle_area",
    "description": "Calculate the area of a triangle given its base and height.",
    "parameters": {"type": "dict", "properties": {
        "base": {"type": "integer", "description": "The base of the triangle."},
        "height": {"type": "float", "description": "The height of the triangle."},
        "unit": {"type": "string", "description": "The unit of measure (defaults to 'units')."},
    }, "required": ["base", "height"]},
}
HYPOT_DOC = {
    "name": "math.hypot",
    "description": "Euclidean norm.",
    "parameters": {"type": "dict", "properties": {"x": {"type": "integer", "description": "x"},
                                                  "y": {"type": "integer", "description": "y"}},
                   "required": ["x", "y"]},
}
BFCL_QUESTIONS = [
    {"id": "simple_0", "question": [[{"role": "user", "content": "Area of a triangle with base 10 and height 5?"}]],
     "function": [TRIANGLE_DOC]},
    {"id": "simple_2", "question": [[{"role": "user", "content": "Hypotenuse of a 4, 5 right triangle?"}]],
     "function": [HYPOT_DOC]},
]
BFCL_ANSWERS = [
    {"id": "simple_0", "ground_truth": [{"calculate_triangle_area": {"base": [10], "height": [5.0],
                                                                     "unit": ["units", ""]}}]},
    {"id": "simple_2", "ground_truth": [{"math.hypot": {"x": [4], "y": [5]}}]},
]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_json(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1))
    return path


def write_bfcl(folder: Path) -> Path:
    """BFCL's layout: `BFCL_v3_simple.json` (JSON lines) and `possible_answer/BFCL_v3_simple.json`."""
    write_jsonl(folder / "possible_answer" / "BFCL_v3_simple.json", BFCL_ANSWERS)
    return write_jsonl(folder / "BFCL_v3_simple.json", BFCL_QUESTIONS)
