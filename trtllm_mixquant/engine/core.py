"""`EngineCore`: the PyTorch backend (`EngineBackend`): one model, one KV pool, one scheduler.

Used by the offline `LLM` and the in-process async engine (colocated: both phases' weights in one
model) and by the context and generation workers of the disaggregated orchestrator.
"""

from __future__ import annotations

import logging

import torch

from trtllm_mixquant.engine.base import BlockUsage, EngineRequest, KVEvent, Reservation, RequestTooLarge, RequestUpdate
from trtllm_mixquant.engine.batch_builder import build_step
from trtllm_mixquant.engine.block_manager import BlockManager
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.model_runner import ModelRunner
from trtllm_mixquant.engine.ranks import stop_followers
from trtllm_mixquant.engine.overlap import InFlight, deferrable, overlap_scheduling
from trtllm_mixquant.engine.sampler import TokenLogprobs, pick, sample, token_logprobs
from trtllm_mixquant.engine.sampling import grammar_engine
from trtllm_mixquant.engine.scheduler import Scheduler
from trtllm_mixquant.engine.sequence import Sequence, Status
from trtllm_mixquant.errors import InvalidRequest
from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.runtime.attention import check_fp8_attention
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.model import CausalLM

log = logging.getLogger(__name__)


class EngineCore:
    """layout: the pool's layout (dtype = the model's); num_blocks excludes the scratch block that
    padded CUDA-graph rows write into."""

    def __init__(self, model: CausalLM, layout: KVCacheLayout, max_seq_len: int, eos_ids: set[int],
                 num_blocks: int, config: EngineConfig, tokenizer=None):
        self.model, self.eos_ids, self.max_seq_len, self.layout = model, eos_ids, max_seq_len, layout
        device = model.model.embed_tokens.weight.device
        if device.type == "cuda":
            torch.cuda.set_device(device)  # Triton kernels and CUDA graphs use the current device
        self.kv_cache = KVCache(layout, num_blocks + 1, device)
        self.blocks = BlockManager(num_blocks, layout)
        self.runner = ModelRunner(model, self.kv_cache, num_blocks, layout.blocks_for(max_seq_len),
                                  config.max_num_seqs, config.max_step_tokens, config.cuda_graphs,
                                  config.compile_regions)
        self.scheduler = Scheduler(self.blocks, config.max_num_seqs, config.max_step_tokens)
        self.requests: dict[str, Sequence] = {}
        self.receiving: dict[str, int] = {}  # reserved request -> tokens of KV that will arrive
        if config.fp8_attention != "off":
            check_fp8_attention(model.config.head_dim, device)
        self.fp8_attention = config.fp8_attention
        self.overlap = overlap_scheduling(config.async_scheduling, device, model.tp.size)
        self.inflight: InFlight | None = None  # the step whose sampled tokens the host has not read
        self.tokenizer, self._grammars = tokenizer, None  # structured outputs: compiled on first use

    def _sequence(self, request: EngineRequest) -> Sequence:
        seq = Sequence.from_request(request)
        if request.params.guide is not None and not request.prefill_only:
            seq.matcher = self.grammars().matcher(request.params.guide)
        return seq

    def grammars(self):
        if self._grammars is None:
            if self.tokenizer is None:
                raise InvalidRequest("this engine was started without its tokenizer, so it cannot follow a guide")
            vocab_size = self.model.config.vocab_size
            self._grammars = grammar_engine().GrammarCompiler(self.tokenizer, vocab_size, self.eos_ids)
        return self._grammars

    # ---- requests ------------------------------------------------------------------------------
    def add(self, request: EngineRequest) -> None:
        if request.request_id in self.requests:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        seq = self._sequence(request)
        self._check_fits(seq)
        self.requests[request.request_id] = seq
        self.scheduler.add(seq)

    def _check_fits(self, seq: Sequence) -> int:
        """Tokens the request can reach (prompt plus max_tokens, within max_seq_len); RequestTooLarge if
        even the whole pool cannot hold them."""
        total = min(len(seq) + (0 if seq.stops_after_prefill else seq.params.max_tokens), self.max_seq_len)
        if self.layout.blocks_for(total) > self.blocks.num_blocks:
            raise RequestTooLarge(f"the request needs {self.layout.blocks_for(total)} KV blocks for its prompt and "
                                  f"max_tokens, and the engine has {self.blocks.num_blocks}; ask for fewer max_tokens "
                                  "(the operator can raise --kv-cache-blocks)")
        return total

    def has_work(self) -> bool:
        return self.scheduler.has_work() or self.inflight is not None

    def close(self) -> None:
        """Stop the other tensor-parallel ranks (rank 0; nothing to do on one rank)."""
        stop_followers(self.model.tp)

    def abort(self, request_id: str) -> None:
        """End a request in whatever state it is (waiting, running, reserved, prefilled) and free its blocks."""
        seq = self.requests.pop(request_id, None)
        if seq is None:
            return
        self.receiving.pop(request_id, None)
        if seq in self.scheduler.waiting:
            self.scheduler.waiting.remove(seq)
        elif seq in self.scheduler.running:
            self.scheduler.running.remove(seq)
        self.blocks.release(seq)
        seq.status, seq.finish_reason = Status.FINISHED, seq.finish_reason or "abort"

    # ---- KV from elsewhere (generation workers) and to elsewhere (context workers) -------------
    def reserve(self, request: EngineRequest, receive_until: int) -> Reservation | None:
        seq = self._sequence(request)
        total = self._check_fits(seq)
        self.blocks.match_prefix(seq)
        if not self.blocks.allocate(seq, total - seq.num_computed):
            self.blocks.release(seq)
            return None
        self.requests[request.request_id] = seq
        cached = seq.num_computed
        if receive_until <= cached:
            self.scheduler.add(seq)
            return Reservation(cached, -1, [])
        self.receiving[request.request_id] = receive_until
        first = cached // self.layout.block_size
        return Reservation(cached, first, seq.block_table[first:self.layout.blocks_for(receive_until)])

    def kv_arrived(self, request_id: str) -> None:
        seq = self.requests[request_id]
        seq.num_computed = self.receiving.pop(request_id)
        self.scheduler.add(seq)

    def kv_blocks(self, request_id: str) -> list[int]:
        return list(self.requests[request_id].block_table)

    def block_usage(self) -> BlockUsage:
        reserved = {b for rid in self.receiving for b in self.requests[rid].block_table}
        free = self.blocks.num_free
        return BlockUsage(self.blocks.num_blocks, free, self.blocks.num_blocks - free - len(reserved), len(reserved))

    def check_blocks(self) -> None:
        self.blocks.check([s for s in self.requests.values()])

    def enable_kv_events(self) -> None:
        if self.blocks.events is None:
            self.blocks.events = []

    def kv_events(self) -> list[KVEvent]:
        if self.blocks.events is None:
            return []
        events, self.blocks.events = self.blocks.events, []
        return events

    # ---- one step --------------------------------------------------------------------------------
    def step(self) -> list[RequestUpdate]:
        """Run one forward step over the scheduled chunks. With asynchronous scheduling (`overlap`),
        the updates are those of the step before, read while this one runs."""
        chunks = self.scheduler.schedule(holding=self._ending())
        if not chunks:
            return self._read_inflight()
        batch, rows = build_step(chunks, self.layout.block_size, self.fp8_attention)
        if self.inflight is not None:
            batch.input_ids = self.inflight.fill(batch.input_ids)
        logits = self.runner.forward(batch)
        updates = self._read_inflight()
        for seq, n in chunks:
            if seq.status is not Status.FINISHED:  # else its last token ended it: its row here is dropped
                seq.num_computed += n
                self.blocks.register_full_blocks(seq)
        if rows.scored:  # before sampling: a sequence's prompt logprobs go out with its first token
            self._score(logits[len(rows.next_token):], rows.scored)
        live = [(i, seq) for i, seq in enumerate(rows.next_token) if seq.status is not Status.FINISHED]
        if live:
            seqs = [seq for _, seq in live]
            if len(live) == len(rows.next_token):
                row_logits = logits[:len(seqs)]
            else:
                row_logits = logits[torch.tensor([i for i, _ in live], device=logits.device)]
            if self.overlap and all(deferrable(seq) for seq in seqs):
                self.inflight = InFlight.start(seqs, pick(row_logits, [s.params for s in seqs],
                                                          [s.generator for s in seqs]))
            else:
                sampled = sample(row_logits, seqs)
                for seq, token, logprobs in zip(seqs, sampled.token_ids, sampled.logprobs):
                    seq.token_ids.append(token)
                    updates.append(self._took(seq, token, logprobs))
        for seq, _ in chunks:
            if seq.status is Status.RUNNING and seq.num_pending == 0 and seq.stops_after_prefill:
                updates.append(self._prefilled(seq))
        return updates

    def _took(self, seq: Sequence, token: int, logprobs: TokenLogprobs | None) -> RequestUpdate:
        """The update of a sequence whose new last token is `token`; finishes it if the token ends it."""
        reason = self.finish_reason(seq, token)
        if reason:
            self._finish(seq, reason)
        return RequestUpdate(seq.request_id, [token], reason, seq.num_cached_prompt,
                             logprobs=None if logprobs is None else [logprobs],
                             prompt_logprobs=self._take_prompt_logprobs(seq))

    def _read_inflight(self) -> list[RequestUpdate]:
        """Wait for the step in flight (if any) and put its tokens in place of the placeholders."""
        inflight, self.inflight = self.inflight, None
        if inflight is None:
            return []
        updates = []
        for seq, position, token in zip(inflight.seqs, inflight.positions, inflight.wait()):
            if seq.status is not Status.FINISHED:  # else aborted meanwhile
                seq.token_ids[position] = token
                updates.append(self._took(seq, token, None))
        return updates

    def _ending(self) -> set[Sequence]:
        """Sequences whose token in flight is their last by length: the next step leaves them out."""
        if self.inflight is None:
            return set()
        return {seq for seq in self.inflight.seqs
                if len(seq.output_ids) >= seq.params.max_tokens or len(seq) >= self.max_seq_len}

    def _score(self, logits: torch.Tensor, rows: list[tuple[Sequence, int]]) -> None:
        logprobs = torch.log_softmax(logits, dim=-1)
        targets = torch.tensor([seq.token_ids[p + 1] if p + 1 < len(seq) else seq.following_token for seq, p in rows],
                               device=logprobs.device)
        values = logprobs.gather(1, targets[:, None]).squeeze(1).tolist()
        for row, ((seq, p), value) in enumerate(zip(rows, values)):
            if seq.params.prompt_logprobs is not None:
                if seq.prompt_logprobs is not None:  # by position: a preempted sequence computes them again
                    seq.prompt_logprobs[p] = token_logprobs(logprobs[row], value, seq.params.prompt_logprobs)
                continue
            seq.token_logprobs.append(value)
            if seq.distributions is not None:
                seq.distributions.append(logprobs[row].cpu())

    def _take_prompt_logprobs(self, seq: Sequence) -> dict | None:
        """The prompt logprobs once, with the request's first update."""
        taken, seq.prompt_logprobs = seq.prompt_logprobs, None
        return taken

    def _prefilled(self, seq: Sequence) -> RequestUpdate:
        scoring = seq.logits_positions is not None and seq.params.prompt_logprobs is None
        self._finish(seq, "scored" if scoring else "prefilled", keep=not scoring)
        return RequestUpdate(seq.request_id, [], seq.finish_reason, seq.num_cached_prompt,
                             len(seq) - seq.num_cached_prompt, seq.token_logprobs if scoring else None,
                             seq.distributions, prompt_logprobs=self._take_prompt_logprobs(seq))

    def _finish(self, seq: Sequence, reason: str, keep: bool = False) -> None:
        """keep: a prefilled request stays (its blocks held) until `abort` once its KV was sent."""
        self.scheduler.finish(seq, reason, keep_blocks=keep)
        if not keep:
            del self.requests[seq.request_id]

    def finish_reason(self, seq: Sequence, token: int) -> str | None:
        p = seq.params
        if seq.matcher is not None and seq.matcher.accept(token):
            return "stop"  # the grammar is complete and its stop token taken
        if (token in self.eos_ids and not p.ignore_eos) or token in p.stop_token_ids:
            return "stop"
        if len(seq.output_ids) >= p.max_tokens or len(seq) >= self.max_seq_len:
            return "length"
        return None
