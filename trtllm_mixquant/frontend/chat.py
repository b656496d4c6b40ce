"""Chat requests to prompts: OpenAI-shaped messages converted for the model's Jinja chat template,
tools, tool_choice.

tool_choice: `none` renders no tools (and `<tool_call>` text stays content); `auto` renders them;
`required` renders them and constrains the reply, with a grammar (`engine.grammar`), to one
`<tool_call>` holding a valid call of one of them (name and arguments matching its parameters' JSON
schema), after an optional `<think>` block if the chat template renders reasoning; a named function
renders only that tool and constrains the reply to a call of it (Qwen3/Hermes format).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError

from trtllm_mixquant.engine.sampling import Guide, grammar_engine
from trtllm_mixquant.errors import InvalidRequest
from trtllm_mixquant.frontend.text import TextCodec
from trtllm_mixquant.frontend.tool_parser import CALL, END_CALL, END_THINK, THINK


# apply_chat_template's own arguments: what chat_template_kwargs must not override
TEMPLATE_ARGUMENTS = {"conversation", "tools", "documents", "add_generation_prompt", "continue_final_message",
                      "tokenize", "padding", "truncation", "max_length", "return_tensors", "return_dict",
                      "return_assistant_tokens_mask", "tokenizer_kwargs"}


@dataclass
class ChatPrompt:
    token_ids: list[int]
    guide: Guide | None  # what tool_choice forces the reply to be
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


def call_schema(tools: list[dict]) -> dict[str, Any]:
    """The JSON schema of one call of one of `tools` ({"name": ..., "arguments": ...})."""
    calls = [{"type": "object", "required": ["name", "arguments"],
              "properties": {"name": {"const": t["function"]["name"]},
                             "arguments": t["function"].get("parameters") or {"type": "object"}}} for t in tools]
    return calls[0] if len(calls) == 1 else {"anyOf": calls}


def choose_tools(tools: list[dict] | None, tool_choice: str | dict | None) -> tuple[list[dict] | None, bool]:
    """The tools the template renders, and whether the reply must call one of them.

    tool_choice: "none", "auto", "required" or {"type": "function", "function": {"name": ...}}."""
    tools = tools or []
    choice = tool_choice or ("auto" if tools else "none")
    if choice == "none" or (choice == "auto" and not tools):
        return None, False
    if not tools:
        raise InvalidRequest("tool_choice requires tools", param="tool_choice")
    if choice in ("auto", "required"):
        return tools, choice == "required"
    name = choice["function"]["name"]
    chosen = [t for t in tools if t["function"]["name"] == name]
    if not chosen:
        raise InvalidRequest(f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    return chosen, True


def forced_call_guide(tools: list[dict], reasons: bool) -> Guide:
    """A call of one of `tools`, after an optional reasoning block if the model reasons (`reasons`)."""
    try:
        return grammar_engine().tool_call_guide(call_schema(tools), CALL + "\n", "\n" + END_CALL,
                                               (THINK, END_THINK) if reasons else None)
    except (RuntimeError, ValueError) as e:
        raise InvalidRequest(f"the tools' parameters are not a JSON schema the grammar engine reads: {e}",
                             param="tools") from None


def build_chat_prompt(codec: TextCodec, messages: list[dict[str, Any]], tools: list[dict] | None = None,
                      tool_choice: str | dict | None = None,
                      template_kwargs: dict[str, Any] | None = None) -> ChatPrompt:
    """Render and tokenize a chat request (OpenAI-shaped messages, tools and tool_choice)."""
    clash = sorted(set(template_kwargs or {}) & TEMPLATE_ARGUMENTS)
    if clash:
        raise InvalidRequest(f"chat_template_kwargs may not set {', '.join(clash)}: the server sets them",
                             param="chat_template_kwargs")
    rendered_tools, forced = choose_tools(tools, tool_choice)
    try:
        text = codec.tokenizer.apply_chat_template(template_messages(messages), tools=rendered_tools,
                                                   add_generation_prompt=True, tokenize=False,
                                                   **(template_kwargs or {}))
    except (TemplateError, ValueError) as e:  # the template's own message (e.g. "roles must alternate")
        raise InvalidRequest(f"the chat template cannot render these messages: {e}", param="messages") from None
    except TypeError:
        raise InvalidRequest("the chat template cannot render these messages with these chat_template_kwargs",
                             param="chat_template_kwargs") from None
    in_reasoning = text.rstrip().endswith(THINK)
    # A model reasons if its template renders reasoning and has not opened the block for it already
    # (a model that does not reason could wander in an open-ended block the grammar allowed it).
    reasons = THINK in (codec.tokenizer.chat_template or "") and not in_reasoning
    guide = forced_call_guide(rendered_tools, reasons) if forced else None
    return ChatPrompt(codec.encode(text, param="messages"), guide, rendered_tools is not None, in_reasoning)
