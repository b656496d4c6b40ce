"""`POST /v1/completions`: text in, text out (no chat template)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from trtllm_mixquant.server.generation import pieces, start_generation, whole_text
from trtllm_mixquant.server.protocol import CompletionRequest
from trtllm_mixquant.server.responses import Envelope, new_id, sse_response
from trtllm_mixquant.server.state import ServerState

router = APIRouter()


@router.post("/v1/completions")
async def create_completion(req: CompletionRequest, request: Request):
    state: ServerState = request.app.state.server
    state.check_model(req.model)
    req.check_supported()
    prompt = req.single_prompt()
    ids = await state.encode(prompt)
    head = Envelope(new_id("cmpl"), "text_completion", state.config.model_name)
    gen = await start_generation(state, ids, req, req.max_tokens, request.url.path, head.id)

    def choice(text: str, finish_reason: str | None) -> dict:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}

    if not req.stream:
        text = await whole_text(gen, request)
        return head.body([choice(text, gen.finish_reason)], usage=gen.usage())

    async def chunks():
        async for piece in pieces(gen):
            yield head.body([choice(piece.text, piece.finish_reason)])
    return sse_response(chunks(), head, gen, req.stream_options)
