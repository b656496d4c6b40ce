"""Read the final answer out of a model's math reply: the last `\\boxed{}`, else a stated answer."""

from __future__ import annotations

import re

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_ANSWER_IS_RE = re.compile(r"answer\s*(?:is|:)\s*:?\s*(.+?)\s*(?:\.\s|\.?$|\n)", re.IGNORECASE)
_HASHES_RE = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` (nested braces kept), or of `\\boxed 5`.

    None when there is no box or the last one is never closed.
    """
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    i = matches[-1].end()
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] != "{":
        return re.match(r"[^\s$]*", text[i:]).group() or None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return None


def stated_answer(text: str) -> str | None:
    """The last "the answer is X" / "Answer: X" in the text, without surrounding `$`."""
    matches = _ANSWER_IS_RE.findall(text)
    if not matches:
        return None
    return matches[-1].strip().strip("$").strip() or None


def extract_math_answer(text: str) -> str | None:
    """The last boxed answer, else the last stated answer; None when the reply gives neither."""
    boxed = last_boxed(text)
    return boxed if boxed is not None else stated_answer(text)


def extract_gsm8k_answer(text: str) -> str | None:
    """GSM8K: boxed, else `#### X`, else a stated answer, else the last number in the reply."""
    answer = last_boxed(text)
    if answer is None:
        hashes = _HASHES_RE.findall(text)
        answer = hashes[-1] if hashes else stated_answer(text)
    if answer is None:
        numbers = _NUMBER_RE.findall(text)
        answer = numbers[-1] if numbers else None
    return answer
