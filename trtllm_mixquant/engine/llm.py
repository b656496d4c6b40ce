"""`LLM`: the offline API over the colocated engines (both phases in one process, one KV pool)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from trtllm_mixquant.engine.batch_builder import build_step
from trtllm_mixquant.engine.block_manager import BlockManager
from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.engine.sampling import SamplingParams, sample
from trtllm_mixquant.engine.scheduler import Scheduler
from trtllm_mixquant.engine.sequence import Sequence
from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.loader import load_causal_lm
from trtllm_mixquant.runtime.quantized import make_quantized_kernel

log = logging.getLogger(__name__)
ALL_TOKENS = 1 << 62


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: str
    num_cached_prompt_tokens: int


class LLM:
    """Generate, chat and score with Mix-Quant phase rules.

    mode: "mixquant" (prompt through the quantized context weights except its last
    `num_precise_prompt_tokens`, the rest in BF16), "bf16" (BF16 everywhere) or "quantized" (the
    context engine's precision everywhere).
    """

    def __init__(self, engine_dir: str | Path, mode: str = "mixquant", device: str = "auto",
                 dtype: torch.dtype = torch.bfloat16, num_precise_prompt_tokens: int = 1,
                 kv_cache_blocks: int | None = None, max_num_seqs: int = 64, max_step_tokens: int = 4096):
        from transformers import AutoTokenizer, GenerationConfig

        self.dirs = resolve_engine_dirs(engine_dir, mode)
        self.mode, self.k = mode, num_precise_prompt_tokens
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self.model = load_causal_lm(self.dirs.generation, self.dirs.context if mode != "bf16" else None,
                                    dtype, self.device, make_quantized_kernel)
        self.tokenizer = AutoTokenizer.from_pretrained(self.dirs.generation)
        cfg = self.model.config
        self.layout = KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, "bfloat16", self.dirs.block_size)
        num_blocks = kv_cache_blocks or max(4 * -(-self.dirs.max_seq_len // self.dirs.block_size), 64)
        self.kv = KVCache(self.layout, num_blocks, self.device, dtype)
        self.blocks = BlockManager(num_blocks, self.dirs.block_size)
        self.scheduler = Scheduler(self.blocks, max_num_seqs, max_step_tokens)
        self.eos_ids = {self.tokenizer.eos_token_id}
        try:
            eos = GenerationConfig.from_pretrained(self.dirs.generation).eos_token_id
            self.eos_ids |= set(eos if isinstance(eos, list) else [eos])
        except OSError:
            pass
        self.eos_ids.discard(None)
        log.info("LLM %s: mode %s, context precision %s, device %s, %d KV blocks of %d tokens",
                 engine_dir, mode, self.dirs.precision, self.device, num_blocks, self.dirs.block_size)

    # ---- request construction -------------------------------------------------------------
    def _tokens(self, text_or_ids: str | list[int]) -> list[int]:
        return list(text_or_ids) if not isinstance(text_or_ids, str) else self.tokenizer(text_or_ids, add_special_tokens=False)["input_ids"]

    def _quantized_until(self, num_prompt_tokens: int, mode: str | None) -> int:
        mode = mode or self.mode
        if mode == "bf16":
            return 0
        if self.dirs.context is None or mode not in ("mixquant", "quantized"):
            raise ValueError(f"mode {mode!r} needs a context engine, and this LLM runs mode {self.mode!r}")
        return ALL_TOKENS if mode == "quantized" else max(num_prompt_tokens - self.k, 0)

    def _check_length(self, n: int, extra: int) -> None:
        if n == 0:
            raise ValueError("the prompt is empty")
        if n + extra > self.dirs.max_seq_len:
            raise ValueError(f"prompt of {n} tokens plus {extra} new tokens exceeds the engine's maximum "
                             f"sequence length of {self.dirs.max_seq_len} tokens")

    def add_request(self, prompt: str | list[int], params: SamplingParams, mode: str | None = None) -> Sequence:
        ids = self._tokens(prompt)
        self._check_length(len(ids), params.max_tokens)
        seq = Sequence(ids, params, self._quantized_until(len(ids), mode))
        self.scheduler.add(seq)
        return seq

    # ---- the engine loop ------------------------------------------------------------------
    def step(self) -> list[Sequence]:
        """Run one forward step; returns the sequences that finished in it."""
        chunks = self.scheduler.schedule()
        batch, rows = build_step(chunks, self.dirs.block_size)
        with torch.inference_mode():
            logits = self.model(batch.to(self.device), self.kv)
        for seq, n in chunks:
            seq.num_computed += n
            self.blocks.register_full_blocks(seq)
        finished = []
        if rows.next_token:
            seqs = rows.next_token
            tokens = sample(logits[:len(seqs)], [s.params for s in seqs], [s.generator for s in seqs]).tolist()
            for seq, token in zip(seqs, tokens):
                seq.token_ids.append(token)
                reason = self._finish_reason(seq, token)
                if reason:
                    self.scheduler.finish(seq, reason)
                    finished.append(seq)
        if rows.scored:
            logprobs = torch.log_softmax(logits[len(rows.next_token):], dim=-1)
            targets = torch.tensor([seq.token_ids[p + 1] for seq, p in rows.scored], device=logprobs.device)
            values = logprobs.gather(1, targets[:, None]).squeeze(1).tolist()
            for (seq, _), value in zip(rows.scored, values):
                seq.token_logprobs.append(value)
            for seq in {seq for seq, _ in rows.scored}:
                if seq.num_pending == 0:
                    self.scheduler.finish(seq, "scored")
                    finished.append(seq)
        return finished

    def _finish_reason(self, seq: Sequence, token: int) -> str | None:
        p = seq.params
        if (token in self.eos_ids and not p.ignore_eos) or token in p.stop_token_ids:
            return "stop"
        if p.stop:
            text = self.tokenizer.decode(seq.output_ids, skip_special_tokens=True)
            hits = [text.find(s) for s in p.stop if s in text]
            if hits:
                seq.output_text = text[:min(hits)]
                return "stop"
        if len(seq.output_ids) >= p.max_tokens or len(seq) >= self.dirs.max_seq_len:
            return "length"
        return None

    def _run(self, seqs: list[Sequence]) -> None:
        pending = set(seqs)
        while pending:
            pending -= set(self.step())

    def _output(self, seq: Sequence) -> RequestOutput:
        ids = seq.output_ids
        if ids and (ids[-1] in self.eos_ids or ids[-1] in seq.params.stop_token_ids):
            ids = ids[:-1]
        text = seq.output_text if seq.output_text or (seq.params.stop and seq.finish_reason == "stop" and not ids) \
            else self.tokenizer.decode(ids, skip_special_tokens=True)
        return RequestOutput(seq.token_ids[:seq.num_prompt_tokens], seq.output_ids, text, seq.finish_reason,
                             seq.num_cached_prompt)

    # ---- public API -----------------------------------------------------------------------
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
        return self.generate(self._tokens(prompt), params, mode)[0]

    def score(self, prompt: str | list[int], continuation: str | list[int], mode: str | None = None) -> list[float]:
        """Log-probability of each continuation token given the prompt, teacher-forced: the prompt is
        prefilled and the continuation decoded under the mode's phase rules."""
        prompt_ids, cont_ids = self._tokens(prompt), self._tokens(continuation)
        if not cont_ids:
            raise ValueError("the continuation is empty")
        self._check_length(len(prompt_ids), len(cont_ids))
        n = len(prompt_ids)
        seq = Sequence(prompt_ids + cont_ids, SamplingParams(max_tokens=len(cont_ids)), self._quantized_until(n, mode),
                       num_prompt_tokens=n, logits_positions=(n - 1, n + len(cont_ids) - 1))
        self.scheduler.add(seq)
        self._run([seq])
        return seq.token_logprobs
