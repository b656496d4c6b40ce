"""`LLM`: the offline API over the colocated engines (both phases in one process, one KV pool)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from trtllm_mixquant.devices import resolve_device
from trtllm_mixquant.engine.core import EngineCore
from trtllm_mixquant.engine.engine_dirs import EngineDirs, resolve_engine_dirs
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.engine.sequence import Sequence
from trtllm_mixquant.runtime.loader import load_causal_lm
from trtllm_mixquant.runtime.quantized import make_quantized_kernel

log = logging.getLogger(__name__)
ALL_TOKENS = 1 << 62


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    token_ids: list[int]  # every generated token, the EOS or stop token that ended it included
    content_ids: list[int]  # token_ids without that final EOS or stop token: what `text` decodes
    text: str
    finish_reason: str
    num_cached_prompt_tokens: int


def load_tokenizer_and_eos(folder: Path):
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(folder)
    eos_ids = {tokenizer.eos_token_id}
    try:
        eos = GenerationConfig.from_pretrained(folder).eos_token_id
        eos_ids |= set(eos if isinstance(eos, list) else [eos])
    except OSError:
        pass
    eos_ids.discard(None)
    return tokenizer, eos_ids


def quantized_until(dirs: EngineDirs, mode: str, num_prompt_tokens: int, k: int) -> int:
    """Position before which tokens go through the quantized weights, by the mode's phase rule."""
    if mode == "bf16":
        return 0
    if dirs.context is None:
        raise ValueError(f"mode {mode!r} needs a context engine; build one with `python build.py --phase context`")
    return ALL_TOKENS if mode == "quantized" else max(num_prompt_tokens - k, 0)


class LLM:
    """Generate, chat and score with Mix-Quant phase rules.

    mode: "mixquant" (prompt through the quantized context weights except its last
    `num_precise_prompt_tokens`, the rest in BF16), "bf16" (BF16 everywhere) or "quantized" (the
    context engine's precision everywhere). A request may override the mode.
    On a GPU, `compile_regions` runs the layers through torch.compile and `cuda_graphs` replays decode
    steps from CUDA graphs; both off is the CLI's `--enforce-eager` (quick start, slower steps).
    """

    def __init__(self, engine_dir: str | Path, mode: str = "mixquant", device: str = "auto",
                 dtype: torch.dtype = torch.bfloat16, num_precise_prompt_tokens: int = 1,
                 kv_cache_blocks: int | None = None, max_num_seqs: int = 64, max_step_tokens: int = 4096,
                 cuda_graphs: bool = True, compile_regions: bool = True):
        self.dirs = resolve_engine_dirs(engine_dir, mode)
        self.mode, self.k = mode, num_precise_prompt_tokens
        self.device = resolve_device(device)
        model = load_causal_lm(self.dirs.generation, self.dirs.context if mode != "bf16" else None,
                               dtype, self.device, make_quantized_kernel)
        self.tokenizer, eos_ids = load_tokenizer_and_eos(self.dirs.generation)
        num_blocks = kv_cache_blocks or self.dirs.default_kv_blocks()
        self.core = EngineCore(model, self.tokenizer, self.dirs.block_size, self.dirs.max_seq_len, eos_ids,
                               num_blocks, max_num_seqs, max_step_tokens, cuda_graphs, compile_regions)
        log.info("LLM %s: mode %s, context precision %s, device %s, %d KV blocks of %d tokens",
                 engine_dir, mode, self.dirs.precision, self.device, num_blocks, self.dirs.block_size)

    def tokens(self, text_or_ids: str | list[int]) -> list[int]:
        if isinstance(text_or_ids, str):
            return self.tokenizer(text_or_ids, add_special_tokens=False)["input_ids"]
        return list(text_or_ids)

    def check_length(self, n: int, extra: int) -> None:
        if n == 0:
            raise ValueError("the prompt is empty")
        if n + extra > self.dirs.max_seq_len:
            raise ValueError(f"prompt of {n} tokens plus {extra} new tokens exceeds the engine's maximum "
                             f"sequence length of {self.dirs.max_seq_len} tokens")

    def _quantized_until(self, n: int, mode: str | None) -> int:
        mode = mode or self.mode
        if mode != "bf16" and self.mode == "bf16":
            raise ValueError(f"mode {mode!r} needs the context engine's weights; this LLM was loaded in mode 'bf16'")
        return quantized_until(self.dirs, mode, n, self.k)

    def add_request(self, prompt: str | list[int], params: SamplingParams, mode: str | None = None) -> Sequence:
        ids = self.tokens(prompt)
        self.check_length(len(ids), params.max_tokens)
        seq = Sequence(ids, params, self._quantized_until(len(ids), mode))
        self.core.add(seq)
        return seq

    def _run(self, seqs: list[Sequence]) -> None:
        pending = set(seqs)
        while pending:
            pending -= set(self.core.step().finished)

    def _output(self, seq: Sequence) -> RequestOutput:
        ids = seq.output_ids
        if seq.finish_reason == "stop" and ids and (ids[-1] in self.core.eos_ids or ids[-1] in seq.params.stop_token_ids):
            ids = ids[:-1]
        text = seq.output_text if seq.output_text else self.tokenizer.decode(ids, skip_special_tokens=True)
        return RequestOutput(seq.token_ids[:seq.num_prompt_tokens], seq.output_ids, ids, text, seq.finish_reason,
                             seq.num_cached_prompt)

    def generate(self, prompts, params: SamplingParams | None = None, mode: str | None = None) -> list[RequestOutput]:
        """prompts: a string, a token-id list, or a list of either. Returns one output per prompt."""
        single = isinstance(prompts, str) or (prompts and isinstance(prompts[0], int))
        prompts = [prompts] if single else list(prompts)
        seqs = [self.add_request(p, params or SamplingParams(), mode) for p in prompts]
        self._run(seqs)
        return [self._output(s) for s in seqs]

    def chat(self, messages: list[dict], tools: list[dict] | None = None, params: SamplingParams | None = None,
             mode: str | None = None) -> RequestOutput:
        prompt = self.tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
        return self.generate(self.tokens(prompt), params, mode)[0]

    def score(self, prompt: str | list[int], continuation: str | list[int], mode: str | None = None) -> list[float]:
        """Log-probability of each continuation token given the prompt, teacher-forced: the prompt is
        prefilled and the continuation decoded under the mode's phase rules."""
        return self._score(prompt, continuation, mode, keep_distributions=False).token_logprobs

    def score_distributions(self, prompt: str | list[int], continuation: str | list[int],
                            mode: str | None = None) -> torch.Tensor:
        """Like `score`, but the whole next-token distribution at each continuation position:
        log-probabilities [len(continuation), vocab] (fp32, CPU)."""
        return torch.stack(self._score(prompt, continuation, mode, keep_distributions=True).distributions)

    def _score(self, prompt, continuation, mode: str | None, keep_distributions: bool) -> Sequence:
        prompt_ids, cont_ids = self.tokens(prompt), self.tokens(continuation)
        if not cont_ids:
            raise ValueError("the continuation is empty")
        self.check_length(len(prompt_ids), len(cont_ids))
        n = len(prompt_ids)
        seq = Sequence(prompt_ids + cont_ids, SamplingParams(max_tokens=len(cont_ids)), self._quantized_until(n, mode),
                       num_prompt_tokens=n, logits_positions=(n - 1, n + len(cont_ids) - 1), stops_after_prefill=True,
                       distributions=[] if keep_distributions else None)
        self.core.add(seq)
        self._run([seq])
        return seq
