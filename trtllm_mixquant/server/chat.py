"""Chat requests to prompts: OpenAI messages converted for the model's Jinja chat template, tools, tool_choice.

tool_choice: `none` renders no tools (and `<tool_call>` text stays content); `auto` renders them;
`required` renders them and starts the reply with `<tool_call>`; a named function renders only that
tool and starts the reply with `<tool_call>\\n{"name": "NAME", "arguments": `. The forced start is
appended to the prompt and put back in front of the output before parsing, so the model must
continue a call (Qwen3/Hermes format). It does not constrain what the model writes next: a reply
that does not complete a valid JSON call comes back as content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError

from trtllm_mixquant.server.errors import APIError
from trtllm_mixquant.server.protocol import ChatCompletionRequest, ChatMessage
from trtllm_mixquant.server.state import ServerState
from trtllm_mixquant.server.tool_parser import CALL, THINK


@dataclass
class ChatPrompt:
    token_ids: list[int]
    forced: str  # the start of the reply, written by the server
    parse_tools: bool
    in_reasoning: bool  # the template opened `<think>` for the model


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if any(part.get("type") != "text" for part in content):
        raise APIError(400, "only text content parts are supported", param="messages")
    return "\n".join(part.get("text", "") for part in content)


def _arguments(arguments: str | dict[str, Any]) -> str | dict[str, Any]:
    """Templates expect a dict (transformers' convention); a string that is not a JSON object stays as it is."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
        return parsed if isinstance(parsed, dict) else arguments
    return arguments


def template_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI messages as chat templates read them: text content, tool-call arguments as dicts,
    `developer` as `system`, tool results named after the call they answer."""
    out, call_names = [], {}
    for message in messages:
        m = message.model_dump(exclude_none=True)
        m["content"] = _text(message.content)
        if message.role == "developer":
            m["role"] = "system"
        if message.tool_calls:
            m["tool_calls"] = []
            for call in message.tool_calls:
                fn = {"name": call.function.name, "arguments": _arguments(call.function.arguments)}
                m["tool_calls"].append({"id": call.id, "type": "function", "function": fn} if call.id else
                                       {"type": "function", "function": fn})
                if call.id:
                    call_names[call.id] = call.function.name
        if message.role == "tool" and "name" not in m and message.tool_call_id in call_names:
            m["name"] = call_names[message.tool_call_id]
        out.append(m)
    return out


def choose_tools(req: ChatCompletionRequest) -> tuple[list[dict] | None, str]:
    """The tools the template renders, and the forced start of the reply."""
    tools = [t.model_dump(exclude_none=True) for t in req.tools or []]
    choice = req.tool_choice or ("auto" if tools else "none")
    if choice == "none" or (choice == "auto" and not tools):
        return None, ""
    if not tools:
        raise APIError(400, "tool_choice requires tools", param="tool_choice")
    if choice == "auto":
        return tools, ""
    if choice == "required":
        return tools, CALL
    name = choice.function.name
    chosen = [t for t in tools if t["function"]["name"] == name]
    if not chosen:
        raise APIError(400, f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    return chosen, CALL + '\n{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '


def build_chat_prompt(state: ServerState, req: ChatCompletionRequest) -> ChatPrompt:
    tools, forced = choose_tools(req)
    try:
        text = state.tokenizer.apply_chat_template(template_messages(req.messages), tools=tools,
                                                   add_generation_prompt=True, tokenize=False,
                                                   **(req.chat_template_kwargs or {}))
    except (TemplateError, ValueError, TypeError) as e:
        raise APIError(400, f"the chat template cannot render these messages: {e}", param="messages") from None
    return ChatPrompt(state.encode(text + forced), forced, tools is not None, text.rstrip().endswith(THINK))
