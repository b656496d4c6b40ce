"""`POST /v1/completions`: text in, text out (no chat template); a batch of prompts and `n` replies
each, as choices in prompt order; `echo` puts the prompt (and its tokens' logprobs) in front."""

from __future__ import annotations

from fastapi import APIRouter, Request

from trtllm_mixquant.server.generation import merged, pieces, start_generations, usage, whole_replies
from trtllm_mixquant.server.logprobs import completion_logprobs, echoed
from trtllm_mixquant.server.protocol import CompletionRequest
from trtllm_mixquant.server.responses import Envelope, new_id, sse_response
from trtllm_mixquant.server.state import ServerState

router = APIRouter()


@router.post("/v1/completions")
async def create_completion(req: CompletionRequest, request: Request):
    state: ServerState = request.app.state.server
    state.check_model(req.model)
    req.check_supported()
    guide = req.guide()
    texts = req.prompts()
    prompts = [await state.encode(p) for p in texts]
    head = Envelope(new_id("cmpl"), "text_completion", state.config.model_name)
    gens = await start_generations(state, prompts, req, req.max_tokens, request.url.path, head.id, guide)
    wants_logprobs = req.logprobs is not None

    def prompt_of(index: int) -> tuple[str, list[int]]:
        text, ids = texts[index // req.n], prompts[index // req.n]
        return (text if isinstance(text, str) else state.codec.tokenizer.decode(ids)), ids

    def choice(index: int, text: str, finish_reason: str | None, logprobs: list, offset: int = 0) -> dict:
        return {"index": index, "text": text, "finish_reason": finish_reason,
                "logprobs": completion_logprobs(state.codec, logprobs, offset) if wants_logprobs else None}

    if not req.stream:
        choices = []
        for index, (gen, reply) in enumerate(zip(gens, await whole_replies(gens, request))):
            text, logprobs = reply.text, reply.logprobs
            if req.echo:
                prompt_text, ids = prompt_of(index)
                text, logprobs = prompt_text + text, echoed(ids, gen.prompt_logprobs) + logprobs
            choices.append(choice(index, text, gen.finish_reason, logprobs))
        return head.body(choices, usage=usage(gens, req.n))

    async def chunks_of(index: int, gen):
        offset, first = 0, req.echo
        async for piece in pieces(gen):
            text, logprobs = piece.text, piece.logprobs
            if first:  # the prompt goes out with the first piece, once its logprobs are known
                prompt_text, ids = prompt_of(index)
                text, logprobs, first = prompt_text + text, echoed(ids, gen.prompt_logprobs) + logprobs, False
            yield head.body([choice(index, text, piece.finish_reason, logprobs, offset)])
            offset += len(text)
    return sse_response(merged([chunks_of(i, g) for i, g in enumerate(gens)]), head, gens,
                        lambda: usage(gens, req.n), req.stream_options)
