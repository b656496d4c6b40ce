"""An agent task (an OpenAI-shaped conversation) and its decision points, the places a model is scored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from trtllm_mixquant.agent_tasks.chat_format import Message, parse_assistant_text, render_assistant_body


@dataclass(frozen=True)
class DecisionPoint:
    """A conversation prefix and the assistant message that must come next.

    `expected` is either a tool call (`tool_calls` with one call) or a final answer (`content`).
    """

    messages: list[Message]
    expected: Message

    @property
    def kind(self) -> str:
        return "tool_call" if self.expected.get("tool_calls") else "answer"

    @property
    def target_text(self) -> str:
        """The exact assistant text expected after the generation prompt (without `<|im_end|>`)."""
        return render_assistant_body(self.expected)

    def is_correct(self, generated: str) -> bool:
        """Whether a generated reply (without `<|im_end|>`) is the expected call or answer, exactly."""
        content, calls = parse_assistant_text(generated)
        if self.kind == "answer":
            return not calls and calls is not None and content == self.expected["content"]
        want = [
            {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
            for c in self.expected["tool_calls"]
        ]
        return calls == want and content == ""


@dataclass(frozen=True)
class AgentTask:
    """A complete conversation with a tool-using assistant.

    Args:
        seed: the string the task's `random.Random` was seeded with.
        family: which kind of task ("lookup", "compute" or "search").
        budget: the token budget the conversation was padded towards (it never exceeds it by the
            generator's token count).
        tools: OpenAI-style tool schemas, passed to the chat template beside the messages.
        messages: system, user, assistant (tool calls), tool results, ..., final assistant answer.
        size: stations a chain visits, lines an order holds (1 for the other families).
    """

    seed: str
    family: str
    budget: int
    tools: list[dict[str, Any]]
    messages: list[Message]
    size: int = 1

    @property
    def decision_points(self) -> list[DecisionPoint]:
        return [DecisionPoint(self.messages[:i], m) for i, m in enumerate(self.messages) if m["role"] == "assistant"]

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"]
