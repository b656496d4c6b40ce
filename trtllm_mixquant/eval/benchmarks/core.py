"""Plain data shared by the benchmark readers, graders, clients and runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Message = dict[str, Any]
GraderKind = Literal["math", "aime", "gsm8k", "choice", "bfcl"]


class DatasetError(ValueError):
    """A benchmark file is missing, unreadable, or not in the dataset's published schema."""


@dataclass(frozen=True)
class BenchmarkItem:
    """One question: the chat to send, the reference to grade against, and which grader applies.

    reference: the answer string (math, AIME, GSM8K), the choice letter (LongBench v2), or for BFCL
    {"ground_truth": [{name: {arg: [allowed...]}}], "functions": [BFCL function docs]}.
    tools: OpenAI-style tool schemas sent with the request (BFCL only).
    """

    id: str
    kind: GraderKind
    messages: list[Message]
    reference: Any
    tools: list[dict[str, Any]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """What a client returns: the reply text and any tool calls (OpenAI-shaped or bare {name, arguments})."""

    text: str
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Grade:
    """The grader's verdict on one completion: what it read as the answer, and whether that is right."""

    extracted: str | None
    correct: bool
    reason: str = ""


def final_reply(text: str) -> str:
    """The part of a reply after its reasoning (`</think>`), where the answer is read from."""
    return text.rsplit("</think>", 1)[-1]
