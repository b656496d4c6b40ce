"""Readers for the math benchmarks: MATH500, AIME 2024/2025 and GSM8K, in their published schemas.

- MATH500 (HuggingFaceH4/MATH-500): problem, solution, answer, subject, level, unique_id.
- AIME 2024 (Maxwell-Jia/AIME_2024: ID, Problem, Solution, Answer; HuggingFaceH4/aime_2024: id,
  problem, answer) and AIME 2025 (opencompass/AIME2025: question, answer; yentinglin/aime_2025: id,
  problem, answer). Field names are matched case-insensitively.
- GSM8K (openai/gsm8k): question, answer, whose final answer follows `#### `.
"""

from __future__ import annotations

from pathlib import Path

from trtllm_mixquant.eval.benchmarks.core import BenchmarkItem, DatasetError, GraderKind, Message
from trtllm_mixquant.eval.benchmarks.files import pick, read_records

# The instruction of the Qwen3 and Mix-Quant math evaluations.
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
_ID_FIELDS = ("unique_id", "id", "_id", "idx")
_QUESTION_FIELDS = ("problem", "question")


def math_messages(problem: str) -> list[Message]:
    """The single user turn every math benchmark sends."""
    return [{"role": "user", "content": f"{problem.strip()}\n{MATH_INSTRUCTION}"}]


def read_math500(path: str | Path) -> list[BenchmarkItem]:
    """MATH500 items, graded by boxed-answer equivalence."""
    schema = "MATH-500 fields (problem, answer; optional unique_id, subject, level)"
    items = []
    for i, rec in enumerate(read_records(path, schema)):
        where = f"{path} record {i} ({schema})"
        meta = {key: rec[key] for key in ("subject", "level") if key in rec}
        items.append(_item(rec, i, "math500", "math", pick(rec, ("problem",), where),
                           str(pick(rec, ("answer",), where)), meta))
    return items


def read_aime(path: str | Path, name: str = "aime") -> list[BenchmarkItem]:
    """AIME 2024 or 2025 items (integer answers 0..999)."""
    schema = "AIME fields (problem or question, answer; optional id)"
    items = []
    for i, rec in enumerate(read_records(path, schema)):
        where = f"{path} record {i} ({schema})"
        answer = str(pick(rec, ("answer",), where)).strip()
        if not answer.isdigit():
            raise DatasetError(f"{where}: the answer {answer!r} is not an AIME integer")
        items.append(_item(rec, i, name, "aime", pick(rec, _QUESTION_FIELDS, where), answer, {}))
    return items


def read_gsm8k(path: str | Path) -> list[BenchmarkItem]:
    """GSM8K items; the reference is the number after `#### ` in the answer field."""
    schema = "GSM8K fields (question, answer ending in '#### <number>')"
    items = []
    for i, rec in enumerate(read_records(path, schema)):
        where = f"{path} record {i} ({schema})"
        solution = str(pick(rec, ("answer",), where))
        if "####" not in solution:
            raise DatasetError(f"{where}: the answer has no '#### <number>' final line")
        final = solution.rsplit("####", 1)[1].strip().replace(",", "")
        items.append(_item(rec, i, "gsm8k", "gsm8k", pick(rec, ("question",), where), final, {}))
    return items


def _item(rec: dict, index: int, prefix: str, kind: GraderKind, problem: str, answer: str,
          meta: dict) -> BenchmarkItem:
    item_id = str(pick(rec, _ID_FIELDS, "", default=f"{prefix}-{index}"))
    return BenchmarkItem(item_id, kind, math_messages(str(problem)), answer, meta=meta)
