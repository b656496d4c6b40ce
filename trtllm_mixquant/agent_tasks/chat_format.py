"""The Qwen3 chat format: render OpenAI-shaped messages to text, and parse an assistant reply back.

The tokenizer's Jinja chat template (`trtllm_mixquant.training.chat_template`) renders exactly what
`render_chat` does; a test holds the two together.
"""

from __future__ import annotations

import json
import re
from typing import Any

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to help with the user's request. "
    "Their signatures, one JSON object per line, are inside <tools></tools>:\n<tools>"
)
TOOLS_POSTAMBLE = (
    "\n</tools>\n\nTo call a function, reply with its name and arguments as a JSON object inside "
    "<tool_call></tool_call> tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
_TOOL_CALL_RE = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.DOTALL)

Message = dict[str, Any]
Part = tuple[str, bool]  # (text, written by the assistant)


def to_json(value: Any) -> str:
    """JSON the way the chat template's `tojson` filter writes it."""
    return json.dumps(value, ensure_ascii=False)


def render_tool_call(call: dict[str, Any]) -> str:
    """One `<tool_call>` block; `call` is OpenAI-shaped ({"function": {...}}) or bare {"name", "arguments"}."""
    fn = call.get("function", call)
    args = fn["arguments"]
    args_json = args if isinstance(args, str) else to_json(args)
    return '<tool_call>\n{"name": ' + to_json(fn["name"]) + ', "arguments": ' + args_json + "}\n</tool_call>"


def render_assistant_body(message: Message) -> str:
    """What the assistant writes for `message`, up to (not including) `<|im_end|>`."""
    content = message.get("content") or ""
    calls = "\n".join(render_tool_call(call) for call in message.get("tool_calls") or [])
    return content + ("\n" if content and calls else "") + calls


def render_parts(messages: list[Message], tools: list[dict] | None = None,
                 add_generation_prompt: bool = False) -> list[Part]:
    """The rendered conversation as pieces, each flagged True when the assistant wrote it.

    Assistant pieces are the reply bodies plus their closing `<|im_end|>`: the tokens a model is trained to emit.
    """
    parts: list[Part] = []
    first_is_system = bool(messages) and messages[0]["role"] == "system"
    if tools or first_is_system:
        system = messages[0]["content"] if first_is_system else ""
        if tools:
            system += ("\n\n" if first_is_system else "") + TOOLS_PREAMBLE
            system += "".join("\n" + to_json(tool) for tool in tools) + TOOLS_POSTAMBLE
        parts.append((f"{IM_START}system\n{system}{IM_END}\n", False))
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "assistant":
            parts.append((f"{IM_START}assistant\n", False))
            parts.append((render_assistant_body(message) + IM_END, True))
            parts.append(("\n", False))
        elif role == "tool":
            opens = i == 0 or messages[i - 1]["role"] != "tool"
            closes = i == len(messages) - 1 or messages[i + 1]["role"] != "tool"
            text = (f"{IM_START}user" if opens else "") + "\n<tool_response>\n" + message["content"]
            parts.append((text + "\n</tool_response>" + (f"{IM_END}\n" if closes else ""), False))
        elif not (i == 0 and role == "system"):
            parts.append((f"{IM_START}{role}\n{message['content']}{IM_END}\n", False))
    if add_generation_prompt:
        parts.append((f"{IM_START}assistant\n", False))
    return parts


def render_chat(messages: list[Message], tools: list[dict] | None = None,
                add_generation_prompt: bool = False) -> str:
    """The conversation as Qwen3 chat text, equal to the tokenizer's `apply_chat_template(..., tokenize=False)`."""
    return "".join(text for text, _ in render_parts(messages, tools, add_generation_prompt))


def parse_assistant_text(text: str) -> tuple[str, list[dict[str, Any]] | None]:
    """Split a generated reply (without `<|im_end|>`) into (content, tool calls as {"name", "arguments"}).

    Returns None for the calls when a `<tool_call>` block does not hold a JSON object with a name and arguments.
    """
    calls: list[dict[str, Any]] = []
    for body in _TOOL_CALL_RE.findall(text):
        try:
            call = json.loads(body)
        except json.JSONDecodeError:
            return text.strip(), None
        if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
            return text.strip(), None
        calls.append(call)
    return _TOOL_CALL_RE.sub("", text).strip(), calls
