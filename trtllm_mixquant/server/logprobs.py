"""Generated tokens' log-probabilities in the two shapes of the OpenAI API.

Each value is of the model's own distribution at that step (before penalties, grammar masks and
temperature, as vLLM reports them), from the engine that generated the token: BF16 in mixquant and
bf16 modes, the context engine's precision in quantized mode. Token strings are each token decoded
alone (a byte-level token that holds part of a character decodes to U+FFFD).
"""

from __future__ import annotations

from trtllm_mixquant.frontend.text import TextCodec


def _token(codec: TextCodec, token_id: int) -> str:
    return codec.tokenizer.decode([token_id])


def chat_logprobs(codec: TextCodec, logprobs: list) -> dict:
    """`choices[i].logprobs` of /v1/chat/completions: {"content": [{token, logprob, bytes, top_logprobs}]}."""
    def entry(token_id: int, logprob: float) -> dict:
        text = _token(codec, token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}
    return {"content": [{**entry(t, lp.logprob), "top_logprobs": [entry(i, v) for i, v in lp.top]}
                        for t, lp in logprobs]}


def completion_logprobs(codec: TextCodec, logprobs: list, offset: int = 0) -> dict:
    """`choices[i].logprobs` of /v1/completions from (token id, TokenLogprobs or None) pairs: tokens,
    token_logprobs, top_logprobs (the chosen token among them, as vLLM does), text_offset (`offset`:
    characters of the reply before these tokens, for streamed pieces). None: the first prompt token's
    (echo), which nothing predicts."""
    tokens = [_token(codec, t) for t, _ in logprobs]
    offsets = []
    for text in tokens:
        offsets.append(offset)
        offset += len(text)
    return {"tokens": tokens, "token_logprobs": [lp and lp.logprob for _, lp in logprobs],
            "top_logprobs": [lp and {_token(codec, i): v for i, v in [*lp.top, (t, lp.logprob)]} for t, lp in logprobs],
            "text_offset": offsets}


def echoed(prompt_ids: list[int], prompt_logprobs: list | None) -> list:
    """The prompt's (token id, TokenLogprobs) pairs for echo: the first token's is None."""
    return list(zip(prompt_ids, [None, *(prompt_logprobs or [])]))
