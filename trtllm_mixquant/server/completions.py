"""`POST /v1/completions`: text in, text out (no chat template)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from trtllm_mixquant.server.errors import APIError
from trtllm_mixquant.server.generation import start_generation
from trtllm_mixquant.server.protocol import CompletionRequest
from trtllm_mixquant.server.responses import Envelope, new_id, sse_response
from trtllm_mixquant.server.state import ServerState

router = APIRouter()
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint


def prompt_ids(state: ServerState, prompt: str | list[int]) -> list[int]:
    """Text is tokenized as the offline `LLM` does (no special tokens added); ids are checked."""
    if isinstance(prompt, str):
        return state.encode(prompt)
    vocab = len(state.tokenizer)
    if any(not 0 <= i < vocab for i in prompt):
        raise APIError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
    return list(prompt)


@router.post("/v1/completions")
async def create_completion(req: CompletionRequest, request: Request):
    state: ServerState = request.app.state.server
    state.check_model(req.model)
    req.check_supported()
    ids = prompt_ids(state, req.single_prompt())
    head = Envelope(new_id("cmpl"), "text_completion", state.settings.model_name)
    max_tokens = req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS
    gen = await start_generation(state, ids, req, max_tokens, request.url.path, head.id)

    def choice(text: str, finish_reason: str | None) -> dict:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}

    if not req.stream:
        text = await gen.text(request)
        return head.body([choice(text, gen.finish_reason)], usage=gen.usage())

    async def chunks():
        async for piece in gen.pieces():
            yield head.body([choice(piece.text, piece.finish_reason)])
    return sse_response(chunks(), head, gen, req.stream_options)
