"""Chat requests to prompts: OpenAI-shaped messages converted for the model's Jinja chat template,
tools, tool_choice.

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

from trtllm_mixquant.errors import InvalidRequest
from trtllm_mixquant.frontend.text import TextCodec
from trtllm_mixquant.frontend.tool_parser import CALL, THINK


# apply_chat_template's own arguments: what chat_template_kwargs must not override
TEMPLATE_ARGUMENTS = {"conversation", "tools", "documents", "add_generation_prompt", "continue_final_message",
                      "tokenize", "padding", "truncation", "max_length", "return_tensors", "return_dict",
                      "return_assistant_tokens_mask", "tokenizer_kwargs"}


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
        raise InvalidRequest("only text content parts are supported", param="messages")
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


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages as chat templates read them: text content, tool-call arguments as dicts,
    `developer` as `system`, tool results named after the call they answer."""
    out, call_names = [], {}
    for message in messages:
        m = {k: v for k, v in message.items() if v is not None}
        m["content"] = _text(message.get("content"))
        if message["role"] == "developer":
            m["role"] = "system"
        if message.get("tool_calls"):
            m["tool_calls"] = []
            for call in message["tool_calls"]:
                fn = {"name": call["function"]["name"], "arguments": _arguments(call["function"]["arguments"])}
                m["tool_calls"].append({"id": call["id"], "type": "function", "function": fn} if call.get("id") else
                                       {"type": "function", "function": fn})
                if call.get("id"):
                    call_names[call["id"]] = fn["name"]
        if message["role"] == "tool" and "name" not in m and message.get("tool_call_id") in call_names:
            m["name"] = call_names[message["tool_call_id"]]
        out.append(m)
    return out


def choose_tools(tools: list[dict] | None, tool_choice: str | dict | None) -> tuple[list[dict] | None, str]:
    """The tools the template renders, and the forced start of the reply.

    tool_choice: "none", "auto", "required" or {"type": "function", "function": {"name": ...}}."""
    tools = tools or []
    choice = tool_choice or ("auto" if tools else "none")
    if choice == "none" or (choice == "auto" and not tools):
        return None, ""
    if not tools:
        raise InvalidRequest("tool_choice requires tools", param="tool_choice")
    if choice == "auto":
        return tools, ""
    if choice == "required":
        return tools, CALL
    name = choice["function"]["name"]
    chosen = [t for t in tools if t["function"]["name"] == name]
    if not chosen:
        raise InvalidRequest(f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    return chosen, CALL + '\n{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '


def build_chat_prompt(codec: TextCodec, messages: list[dict[str, Any]], tools: list[dict] | None = None,
                      tool_choice: str | dict | None = None,
                      template_kwargs: dict[str, Any] | None = None) -> ChatPrompt:
    """Render and tokenize a chat request (OpenAI-shaped messages, tools and tool_choice)."""
    rendered_tools, forced = choose_tools(tools, tool_choice)
    clash = sorted(set(template_kwargs or {}) & TEMPLATE_ARGUMENTS)
    if clash:
        raise InvalidRequest(f"chat_template_kwargs may not set {', '.join(clash)}: the server sets them",
                             param="chat_template_kwargs")
    try:
        text = codec.tokenizer.apply_chat_template(template_messages(messages), tools=rendered_tools,
                                                   add_generation_prompt=True, tokenize=False,
                                                   **(template_kwargs or {}))
    except (TemplateError, ValueError) as e:  # the template's own message (e.g. "roles must alternate")
        raise InvalidRequest(f"the chat template cannot render these messages: {e}", param="messages") from None
    except TypeError:
        raise InvalidRequest("the chat template cannot render these messages with these chat_template_kwargs",
                             param="chat_template_kwargs") from None
    return ChatPrompt(codec.encode(text + forced, param="messages"), forced, rendered_tools is not None,
                      text.rstrip().endswith(THINK))
