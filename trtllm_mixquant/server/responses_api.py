"""`POST /v1/responses` (and `GET /v1/responses/{id}`): the OpenAI Responses API, the subset the
OpenAI Agents SDK sends: text and message input, `instructions`, function tools and `tool_choice`,
`function_call` / `function_call_output` items, `text.format` (structured outputs), streaming
events, and `previous_response_id` within the server's lifetime.

A request is turned into the chat request it means (the conversation so far, the tools in chat
form) and runs through the chat path; the reply is parsed the same way and written as output items:
`reasoning`, `message` (`output_text`) and `function_call`. Stored responses (`store`, the
default) keep the whole conversation for a later `previous_response_id`, the newest
`MAX_STORED` of them.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trtllm_mixquant.errors import InvalidRequest
from trtllm_mixquant.frontend.tool_parser import ReplyDelta, ReplyParser, ToolCall
from trtllm_mixquant.server.errors import APIError
from trtllm_mixquant.server.generation import pieces, start_generations, whole_replies
from trtllm_mixquant.server.protocol import ChatCompletionRequest, GenerationRequest, MixquantOptions, warn_ignored
from trtllm_mixquant.server.responses import EventStream, now, sse
from trtllm_mixquant.server.state import ServerState

router = APIRouter()
MAX_STORED = 1024


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str = "response"
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: TextFormat = Field(default_factory=TextFormat)


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: TextOptions | None = None
    previous_response_id: str | None = None
    store: bool = True
    stream: bool = False
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    parallel_tool_calls: bool = True
    mixquant: MixquantOptions = Field(default_factory=MixquantOptions)


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    kinds = {part.get("type") for part in content} - {"input_text", "output_text", "text"}
    if kinds:
        raise InvalidRequest(f"only text content is supported (got {', '.join(sorted(map(str, kinds)))})",
                             param="input")
    return "".join(part.get("text", "") for part in content)


def chat_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items as chat messages: messages as they are, a `function_call` joined to the
    assistant turn before it, a `function_call_output` as a `tool` message."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            if item.get("role") not in ("user", "system", "developer", "assistant"):
                raise InvalidRequest(f"a message's role must be user, system, developer or assistant "
                                     f"(got {item.get('role')!r})", param="input")
            out.append({"role": item["role"], "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments", "{}")}}
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output", "")
            out.append({"role": "tool", "tool_call_id": item["call_id"],
                        "content": output if isinstance(output, str) else _text(output)})
        elif kind == "reasoning":
            continue  # earlier reasoning is not shown to the model again (as chat templates drop it)
        else:
            raise InvalidRequest(f"input items of type {kind!r} are not supported", param="input")
    return out


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    out = []
    for tool in tools:
        if tool.get("type") != "function":
            raise InvalidRequest(f"only function tools are supported (got {tool.get('type')!r})", param="tools")
        out.append({"type": "function", "function": {k: tool[k] for k in ("name", "description", "parameters")
                                                      if tool.get(k) is not None}})
    return out


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict | None:
    if isinstance(choice, dict):
        if choice.get("type") != "function" or "name" not in choice:
            raise InvalidRequest("tool_choice must be none, auto, required or {\"type\": \"function\", \"name\": ...}",
                                 param="tool_choice")
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


class ResponseStore:
    """Conversations of stored responses by id (the newest MAX_STORED), and their response bodies."""

    def __init__(self):
        self.items: OrderedDict[str, tuple[list[dict], dict]] = OrderedDict()

    def history(self, response_id: str) -> list[dict]:
        if response_id not in self.items:
            raise APIError(404, f"no stored response {response_id!r} (responses live while the server runs, the "
                                f"newest {MAX_STORED} of them)", param="previous_response_id")
        return list(self.items[response_id][0])

    def body(self, response_id: str) -> dict:
        if response_id not in self.items:
            raise APIError(404, f"no stored response {response_id!r}", param="response_id")
        return self.items[response_id][1]

    def put(self, response_id: str, messages: list[dict], body: dict) -> None:
        self.items[response_id] = (messages, body)
        while len(self.items) > MAX_STORED:
            self.items.popitem(last=False)


def _store(request: Request) -> ResponseStore:
    app_state = request.app.state
    if not hasattr(app_state, "responses"):
        app_state.responses = ResponseStore()
    return app_state.responses


def to_chat_request(req: ResponsesRequest, history: list[dict]) -> tuple[ChatCompletionRequest, list[dict]]:
    """The chat request a Responses request means, and the conversation it continues (without instructions)."""
    conversation = history + chat_messages(req.input)
    messages = ([{"role": "system", "content": req.instructions}] if req.instructions else []) + conversation
    fmt = req.text.format if req.text else None
    response_format = None
    if fmt is not None and fmt.type != "text":
        response_format = {"type": fmt.type}
        if fmt.type == "json_schema":
            response_format["json_schema"] = {"name": fmt.name, "schema": fmt.json_schema or {}}
    given = req.model_extra or {}
    extra = {k: v for k, v in given.items() if k in GenerationRequest.model_fields}
    warn_ignored(set(given) - set(extra) - {"metadata"})
    try:
        chat = ChatCompletionRequest.model_validate({
            **extra, "model": req.model, "messages": messages, "tools": chat_tools(req.tools),
            "tool_choice": chat_tool_choice(req.tool_choice), "response_format": response_format,
            "max_tokens": req.max_output_tokens, "temperature": req.temperature, "top_p": req.top_p,
            "mixquant": req.mixquant.model_dump()})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise InvalidRequest(f"invalid request: {problems}", param="input") from None
    return chat, conversation


def _reasoning_item(text: str) -> dict:
    return {"type": "reasoning", "id": f"rs_{uuid.uuid4().hex}", "summary": [],
            "content": [{"type": "reasoning_text", "text": text}], "status": "completed"}


def _message_item(text: str) -> dict:
    return {"type": "message", "id": f"msg_{uuid.uuid4().hex}", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _call_item(call: ToolCall) -> dict:
    return {"type": "function_call", "id": f"fc_{uuid.uuid4().hex}", "call_id": f"call_{uuid.uuid4().hex[:24]}",
            "name": call.name, "arguments": call.arguments, "status": "completed"}


def _as_messages(output: list[dict]) -> list[dict]:
    """A response's output items as the chat messages a later turn continues from."""
    calls = [{"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
             for i in output if i["type"] == "function_call"]
    text = "".join(p["text"] for i in output if i["type"] == "message" for p in i["content"])
    message = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


class ResponseBody:
    """The response object, in progress and at its end."""

    def __init__(self, req: ResponsesRequest, model: str):
        self.req, self.id, self.created = req, f"resp_{uuid.uuid4().hex}", now()
        self.model = model

    def __call__(self, status: str, output: list[dict], gen=None) -> dict:
        req = self.req
        body = {"id": self.id, "object": "response", "created_at": self.created, "status": status, "model": self.model,
                "output": output, "instructions": req.instructions, "tools": req.tools or [],
                "tool_choice": req.tool_choice or "auto", "parallel_tool_calls": req.parallel_tool_calls,
                "temperature": req.temperature, "top_p": req.top_p, "max_output_tokens": req.max_output_tokens,
                "previous_response_id": req.previous_response_id, "store": req.store, "error": None,
                "text": (req.text or TextOptions()).model_dump(by_alias=True, exclude_none=True),
                "incomplete_details": None, "metadata": (req.model_extra or {}).get("metadata") or {},
                "truncation": "disabled", "usage": None}
        if gen is not None:
            if gen.finish_reason == "length":
                body["status"], body["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
            body["usage"] = {"input_tokens": gen.prompt_tokens, "output_tokens": gen.completion_tokens,
                             "total_tokens": gen.prompt_tokens + gen.completion_tokens,
                             "input_tokens_details": {"cached_tokens": gen.stream.num_cached_prompt},
                             "output_tokens_details": {"reasoning_tokens": 0}}
        return body


def output_items(reply: ReplyDelta) -> list[dict]:
    items = [_reasoning_item(reply.reasoning)] if reply.reasoning else []
    if reply.content or not reply.tool_calls:
        items.append(_message_item(reply.content))
    return items + [_call_item(c) for c in reply.tool_calls]


@router.post("/v1/responses")
async def create_response(req: ResponsesRequest, request: Request):
    state: ServerState = request.app.state.server
    state.check_model(req.model)
    store = _store(request)
    history = store.history(req.previous_response_id) if req.previous_response_id else []
    chat, conversation = to_chat_request(req, history)
    chat.check_supported()
    prompt = await state.chat_prompt(chat)
    head = ResponseBody(req, state.config.model_name)
    (gen,) = await start_generations(state, [prompt.token_ids], chat, chat.requested_max_tokens(), request.url.path,
                                     head.id, prompt.guide or chat.guide())
    parser = ReplyParser(prompt.parse_tools, prompt.in_reasoning)

    def finish(output: list[dict]) -> dict:
        body = head("completed", output, gen)
        if req.store:
            store.put(head.id, conversation + _as_messages(output), body)
        return body

    if not req.stream:
        (whole,) = await whole_replies([gen], request)
        reply = parser.feed(whole.text)
        reply += parser.finish()
        return finish(output_items(reply))
    return EventStream(_events(gen, parser, head, finish), [gen])


async def _events(gen, parser: ReplyParser, head: ResponseBody, finish) -> AsyncIterator[str]:
    """The Responses stream: created, in_progress, each output item added, its deltas, done, then
    completed (or incomplete, when max_output_tokens ended it)."""
    seq = iter(range(1 << 62))
    output: list[dict] = []
    open_item: dict | None = None  # the reasoning or message item receiving deltas

    def event(kind: str, **fields) -> str:
        return f"event: {kind}\n" + sse({"type": kind, "sequence_number": next(seq), **fields})

    def close() -> list[str]:
        nonlocal open_item
        if open_item is None:
            return []
        item, open_item = open_item, None
        index = len(output)
        if item["type"] == "reasoning":
            text = item["content"][0]["text"]
            events = [event("response.reasoning_text.done", item_id=item["id"], output_index=index, content_index=0,
                            text=text)]
        else:
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": text, "annotations": []}
            events = [event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                            text=text, logprobs=[]),
                      event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                            part=part)]
        item["status"] = "completed"
        output.append(item)
        return events + [event("response.output_item.done", output_index=index, item=item)]

    def deltas(kind: str, text: str) -> list[str]:
        nonlocal open_item
        events = []
        if open_item is not None and open_item["type"] != kind:
            events += close()
        index = len(output)
        if open_item is None:
            open_item = _reasoning_item("") if kind == "reasoning" else _message_item("")
            open_item["status"] = "in_progress"
            shown = {**open_item, "content": []} if kind == "message" else open_item
            events.append(event("response.output_item.added", output_index=index, item=shown))
            if kind == "message":
                events.append(event("response.content_part.added", item_id=open_item["id"], output_index=index,
                                    content_index=0, part={"type": "output_text", "text": "", "annotations": []}))
        open_item["content"][0]["text"] += text
        name = "response.reasoning_text.delta" if kind == "reasoning" else "response.output_text.delta"
        extra = {} if kind == "reasoning" else {"logprobs": []}
        return events + [event(name, item_id=open_item["id"], output_index=index, content_index=0, delta=text,
                               **extra)]

    def calls(found: list[ToolCall]) -> list[str]:
        events = close()
        for call in found:
            item, index = _call_item(call), len(output)
            events += [event("response.output_item.added", output_index=index,
                             item={**item, "arguments": "", "status": "in_progress"}),
                       event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                             delta=item["arguments"]),
                       event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                             arguments=item["arguments"], name=item["name"])]
            output.append(item)
            events.append(event("response.output_item.done", output_index=index, item=item))
        return events

    yield event("response.created", response=head("in_progress", []))
    yield event("response.in_progress", response=head("in_progress", []))
    try:
        async for piece in pieces(gen):
            delta = parser.feed(piece.text)
            if piece.finish_reason:
                delta += parser.finish()
            for kind, text in (("reasoning", delta.reasoning), ("message", delta.content)):
                if text:
                    for line in deltas(kind, text):
                        yield line
            for line in calls(delta.tool_calls):
                yield line
        for line in close():
            yield line
        if not output:
            output.append(_message_item(""))
        body = finish(output)
        yield event("response.incomplete" if body["status"] == "incomplete" else "response.completed", response=body)
    except APIError as e:
        yield event("error", code=e.code, message=e.message, param=e.param)


@router.get("/v1/responses/{response_id}")
async def get_response(response_id: str, request: Request):
    return _store(request).body(response_id)
