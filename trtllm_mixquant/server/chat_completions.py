"""`POST /v1/chat/completions`: messages through the chat template; replies parsed into content,
`reasoning_content` and `tool_calls` (whole calls, streamed as one delta each)."""

from __future__ import annotations

import uuid
from dataclasses import replace

from fastapi import APIRouter, Request

from trtllm_mixquant.frontend.tool_parser import ReplyDelta, ReplyParser, ToolCall
from trtllm_mixquant.server.generation import pieces, start_generation, whole_text
from trtllm_mixquant.server.protocol import ChatCompletionRequest
from trtllm_mixquant.server.responses import Envelope, new_id, sse_response
from trtllm_mixquant.server.state import ServerState

router = APIRouter()


def tool_call_json(call: ToolCall, index: int | None = None) -> dict:
    out = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
           "function": {"name": call.name, "arguments": call.arguments}}
    return out if index is None else {"index": index, **out}


def finish_reason(engine_reason: str | None, called: bool) -> str | None:
    return "tool_calls" if called and engine_reason == "stop" else engine_reason


def delta_json(delta: ReplyDelta, first_index: int) -> dict:
    out = {}
    if delta.content:
        out["content"] = delta.content
    if delta.reasoning:
        out["reasoning_content"] = delta.reasoning
    if delta.tool_calls:
        out["tool_calls"] = [tool_call_json(c, first_index + i) for i, c in enumerate(delta.tool_calls)]
    return out


@router.post("/v1/chat/completions")
async def create_chat_completion(req: ChatCompletionRequest, request: Request):
    state: ServerState = request.app.state.server
    state.check_model(req.model)
    req.check_supported()
    prompt = await state.chat_prompt(req)
    head = Envelope(new_id("chatcmpl"), "chat.completion", state.config.model_name)
    gen = await start_generation(state, prompt.token_ids, req, req.requested_max_tokens(), request.url.path, head.id)
    parser = ReplyParser(prompt.parse_tools, prompt.in_reasoning)

    if not req.stream:
        reply = parser.feed(prompt.forced + await whole_text(gen, request))
        reply += parser.finish()
        message = {"role": "assistant", "content": reply.content or (None if reply.tool_calls else ""),
                   "reasoning_content": reply.reasoning or None}
        if reply.tool_calls:
            message["tool_calls"] = [tool_call_json(c) for c in reply.tool_calls]
        choice = {"index": 0, "message": message, "logprobs": None,
                  "finish_reason": finish_reason(gen.finish_reason, bool(reply.tool_calls))}
        return head.body([choice], usage=gen.usage())

    chunk_head = replace(head, object="chat.completion.chunk")

    def chunk(delta: dict, reason: str | None = None) -> dict:
        return chunk_head.body([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}])

    async def chunks():
        yield chunk({"role": "assistant", "content": ""})
        delta, calls = parser.feed(prompt.forced), 0
        async for piece in pieces(gen):
            delta += parser.feed(piece.text)
            if piece.finish_reason:
                delta += parser.finish()
            if delta:
                yield chunk(delta_json(delta, calls))
                calls += len(delta.tool_calls)
            delta = ReplyDelta()
            if piece.finish_reason:
                yield chunk({}, finish_reason(piece.finish_reason, calls > 0))
    return sse_response(chunks(), chunk_head, gen, req.stream_options)
