"""`POST /v1/chat/completions`: messages through the chat template; replies parsed into content,
`reasoning_content` and `tool_calls` (whole calls, streamed as one delta each); `n` replies as
choices."""

from __future__ import annotations

import uuid
from dataclasses import replace

from fastapi import APIRouter, Request

from trtllm_mixquant.frontend.tool_parser import ReplyDelta, ReplyParser, ToolCall
from trtllm_mixquant.server.generation import merged, pieces, start_generations, usage, whole_replies
from trtllm_mixquant.server.logprobs import chat_logprobs
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
    req_guide = req.guide()
    prompt = await state.chat_prompt(req)
    head = Envelope(new_id("chatcmpl"), "chat.completion", state.config.model_name)
    gens = await start_generations(state, [prompt.token_ids], req, req.requested_max_tokens(), request.url.path,
                                   head.id, prompt.guide or req_guide)  # a forced tool call wins over response_format

    def logprobs_json(logprobs: list) -> dict | None:
        return chat_logprobs(state.codec, logprobs) if req.logprobs else None

    if not req.stream:
        choices = []
        for index, (gen, whole) in enumerate(zip(gens, await whole_replies(gens, request))):
            parser = ReplyParser(prompt.parse_tools, prompt.in_reasoning)
            reply = parser.feed(whole.text)
            reply += parser.finish()
            message = {"role": "assistant", "content": reply.content or (None if reply.tool_calls else ""),
                       "reasoning_content": reply.reasoning or None}
            if reply.tool_calls:
                message["tool_calls"] = [tool_call_json(c) for c in reply.tool_calls]
            choices.append({"index": index, "message": message, "logprobs": logprobs_json(whole.logprobs),
                            "finish_reason": finish_reason(gen.finish_reason, bool(reply.tool_calls))})
        return head.body(choices, usage=usage(gens, req.n))

    chunk_head = replace(head, object="chat.completion.chunk")

    def chunk(index: int, delta: dict, reason: str | None = None, logprobs: list | None = None) -> dict:
        return chunk_head.body([{"index": index, "delta": delta, "logprobs": logprobs_json(logprobs or []),
                                 "finish_reason": reason}])

    async def chunks_of(index: int, gen):
        yield chunk(index, {"role": "assistant", "content": ""})
        parser, calls = ReplyParser(prompt.parse_tools, prompt.in_reasoning), 0
        async for piece in pieces(gen):
            delta = parser.feed(piece.text)
            if piece.finish_reason:
                delta += parser.finish()
            if delta or piece.logprobs:
                yield chunk(index, delta_json(delta, calls), logprobs=piece.logprobs)
                calls += len(delta.tool_calls)
            if piece.finish_reason:
                yield chunk(index, {}, finish_reason(piece.finish_reason, calls > 0))
    return sse_response(merged([chunks_of(i, g) for i, g in enumerate(gens)]), chunk_head, gens,
                        lambda: usage(gens, req.n), req.stream_options)
