"""`LLM`: the offline, synchronous API over one colocated backend (both phases in one process, one
KV pool). A thin wrapper: the request checks are `RequestRules`', the text handling the frontend's
`TextCodec`, the engine any `EngineBackend`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from trtllm_mixquant.engine import create_backend
from trtllm_mixquant.engine.base import EngineRequest, in_prompt_order
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.engine.phase import RequestRules
from trtllm_mixquant.engine.sampler import TokenLogprobs
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.frontend.text import TextCodec


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    token_ids: list[int]  # every generated token, the EOS or stop token that ended it included
    content_ids: list[int]  # token_ids without that final EOS or stop token: what `text` decodes
    text: str
    finish_reason: str
    num_cached_prompt_tokens: int
    logprobs: list[TokenLogprobs] | None = None  # one per token of token_ids, if params.logprobs was set
    prompt_logprobs: list[TokenLogprobs] | None = None  # of prompt tokens 1, 2, ..., if params.prompt_logprobs was set


@dataclass
class _Pending:
    request: EngineRequest
    text_stream: object = None
    token_ids: list = None
    text: str = ""
    finish_reason: str | None = None
    num_cached: int = 0
    scores: list[float] | None = None
    distributions: list | None = None
    logprobs: list | None = None
    prompt_logprobs: list | None = None


class LLM:
    """Generate, chat and score with Mix-Quant phase rules.

    mode: "mixquant" (prompt through the quantized context weights except its last
    `num_precise_prompt_tokens`, the rest in BF16), "bf16" (BF16 everywhere, no quantized weights
    loaded) or "quantized" (the context engine's precision everywhere). A request may override it.
    Other keyword arguments are `EngineConfig` fields (device, kv_cache_blocks, cuda_graphs, ...);
    `dtype` may be given as a torch dtype.
    """

    def __init__(self, engine_dir: str | Path, mode: str = "mixquant", **options):
        if isinstance(options.get("dtype"), torch.dtype):
            options["dtype"] = str(options["dtype"]).removeprefix("torch.")
        self._start(EngineConfig(Path(engine_dir), mode=mode, **options))

    @classmethod
    def from_config(cls, config: EngineConfig) -> LLM:
        llm = cls.__new__(cls)
        llm._start(config)
        return llm

    def _start(self, config: EngineConfig) -> None:
        self.config, engine_dir, mode = config, config.engine_dir, config.mode
        self.dirs = resolve_engine_dirs(engine_dir)
        self.rules = RequestRules.for_engines(self.dirs, self.config.num_precise_prompt_tokens, mode,
                                              quantized_loaded=mode != "bf16", quantized_decode=True)
        self.codec = TextCodec.load(self.dirs.generation)
        self.tokenizer = self.codec.tokenizer
        self.engine = create_backend(self.config, "colocated", self.dirs)
        self._ids = itertools.count()

    def close(self) -> None:
        """Stop the engine's other tensor-parallel ranks (nothing to do on one rank)."""
        self.engine.close()

    def tokens(self, text_or_ids: str | list[int]) -> list[int]:
        return self.codec.encode(text_or_ids) if isinstance(text_or_ids, str) else list(text_or_ids)

    def generate(self, prompts, params: SamplingParams | None = None, mode: str | None = None) -> list[RequestOutput]:
        """prompts: a string, a token-id list, or a list of either. Returns one output per prompt."""
        single = isinstance(prompts, str) or (prompts and isinstance(prompts[0], int))
        params = params or SamplingParams()
        pending = [self._generation(self.tokens(p), params, mode) for p in ([prompts] if single else prompts)]
        self._run(pending)
        return [self._output(p) for p in pending]

    def chat(self, messages: list[dict], tools: list[dict] | None = None, params: SamplingParams | None = None,
             mode: str | None = None) -> RequestOutput:
        prompt = self.tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
        return self.generate(self.tokens(prompt), params, mode)[0]

    def score(self, prompt: str | list[int], continuation: str | list[int], mode: str | None = None) -> list[float]:
        """Log-probability of each continuation token given the prompt, teacher-forced: the prompt is
        prefilled and the continuation decoded under the mode's phase rules."""
        return self._score(prompt, continuation, mode, keep_distributions=False).scores

    def score_distributions(self, prompt: str | list[int], continuation: str | list[int],
                            mode: str | None = None) -> torch.Tensor:
        """Like `score`, but the whole next-token distribution at each continuation position:
        log-probabilities [len(continuation), vocab] (fp32, CPU)."""
        return torch.stack(self._score(prompt, continuation, mode, keep_distributions=True).distributions)

    # ---- driving the backend ---------------------------------------------------------------------
    def _generation(self, ids: list[int], params: SamplingParams, mode: str | None) -> _Pending:
        admission = self.rules.admit(len(ids), params.max_tokens, mode)
        request = EngineRequest(f"llm-{next(self._ids)}", ids, replace(params, max_tokens=admission.max_tokens),
                                admission.quantized_until)
        return _Pending(request, self.codec.stream(request.params), [])

    def _score(self, prompt, continuation, mode: str | None, keep_distributions: bool) -> _Pending:
        prompt_ids, cont_ids = self.tokens(prompt), self.tokens(continuation)
        if not cont_ids:
            raise ValueError("the continuation is empty")
        admission = self.rules.admit(len(prompt_ids), len(cont_ids), mode)
        request = EngineRequest(f"llm-{next(self._ids)}", prompt_ids + cont_ids,
                                SamplingParams(max_tokens=len(cont_ids)), admission.quantized_until,
                                score_from=len(prompt_ids), keep_distributions=keep_distributions)
        pending = _Pending(request)
        self._run([pending])
        return pending

    def _run(self, pending: list[_Pending]) -> None:
        running = {p.request.request_id: p for p in pending}
        for p in pending:
            self.engine.add(p.request)
        while running:
            for update in self.engine.step():
                p = running[update.request_id]
                p.num_cached = update.num_cached_prompt
                if p.text_stream is None:  # scoring
                    p.finish_reason, p.scores, p.distributions = update.finish_reason, update.scores, update.distributions
                else:
                    p.token_ids += update.token_ids
                    if update.logprobs:
                        p.logprobs = (p.logprobs or []) + update.logprobs
                    if update.prompt_logprobs is not None:
                        p.prompt_logprobs = in_prompt_order(update.prompt_logprobs)
                    piece = p.text_stream.push(update.token_ids, update.finish_reason)
                    p.text += piece.text
                    p.finish_reason = piece.finish_reason
                    if p.text_stream.stopped and not update.finish_reason:
                        self.engine.abort(update.request_id)  # a stop string ended the text
                if p.finish_reason:
                    del running[update.request_id]

    def _output(self, p: _Pending) -> RequestOutput:
        params = p.request.params
        return RequestOutput(p.request.token_ids, p.token_ids, self.codec.content(p.token_ids, p.finish_reason, params),
                             p.text, p.finish_reason, p.num_cached, p.logprobs, p.prompt_logprobs)
