"""`EngineCore`: one model, one KV pool, one scheduler; `step()` runs one batch.

Used by the offline `LLM` (colocated: both phases' weights in one model) and by the context and
generation workers of the disaggregated orchestrator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from trtllm_mixquant.engine.batch_builder import build_step
from trtllm_mixquant.engine.block_manager import BlockManager
from trtllm_mixquant.engine.model_runner import ModelRunner
from trtllm_mixquant.engine.sampling import sample
from trtllm_mixquant.engine.scheduler import Scheduler
from trtllm_mixquant.engine.sequence import Sequence, Status
from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.model import CausalLM

log = logging.getLogger(__name__)


@dataclass
class StepOutput:
    new_tokens: list[Sequence] = field(default_factory=list)  # sequences that got a token this step
    finished: list[Sequence] = field(default_factory=list)


class EngineCore:
    def __init__(self, model: CausalLM, tokenizer, block_size: int, max_seq_len: int, eos_ids: set[int],
                 num_blocks: int, max_num_seqs: int = 64, max_step_tokens: int = 4096, cuda_graphs: bool = True,
                 compile_regions: bool = True):
        cfg = model.config
        self.model, self.tokenizer, self.eos_ids, self.max_seq_len = model, tokenizer, eos_ids, max_seq_len
        self.layout = KVCacheLayout(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, "bfloat16", block_size)
        device = model.model.embed_tokens.weight.device
        if device.type == "cuda":
            torch.cuda.set_device(device)  # Triton kernels and CUDA graphs use the current device
        dtype = model.model.embed_tokens.weight.dtype
        self.kv = KVCache(self.layout, num_blocks + 1, device, dtype)  # + 1 scratch block for padding
        self.blocks = BlockManager(num_blocks, block_size)
        max_blocks_per_seq = -(-max_seq_len // block_size)
        self.runner = ModelRunner(model, self.kv, num_blocks, max_blocks_per_seq, max_num_seqs, cuda_graphs,
                                  compile_regions)
        self.scheduler = Scheduler(self.blocks, max_num_seqs, max_step_tokens)

    def add(self, seq: Sequence) -> None:
        self.scheduler.add(seq)

    def has_work(self) -> bool:
        return self.scheduler.has_work()

    def abort(self, seq: Sequence) -> None:
        """Drop a waiting or running sequence and free its blocks."""
        if seq in self.scheduler.waiting:
            self.scheduler.waiting.remove(seq)
            self.blocks.release(seq)
            seq.status, seq.finish_reason = Status.FINISHED, "abort"
        elif seq in self.scheduler.running:
            self.scheduler.finish(seq, "abort")

    def step(self) -> StepOutput:
        """Run one forward step over the scheduled chunks."""
        out = StepOutput()
        chunks = self.scheduler.schedule()
        if not chunks:
            return out
        batch, rows = build_step(chunks, self.layout.block_size)
        logits = self.runner.forward(batch)
        for seq, n in chunks:
            seq.num_computed += n
            self.blocks.register_full_blocks(seq)
        if rows.next_token:
            seqs = rows.next_token
            tokens = sample(logits[:len(seqs)], [s.params for s in seqs], [s.generator for s in seqs]).tolist()
            for seq, token in zip(seqs, tokens):
                seq.token_ids.append(token)
                out.new_tokens.append(seq)
                reason = self.finish_reason(seq, token)
                if reason:
                    self.scheduler.finish(seq, reason)
                    out.finished.append(seq)
        if rows.scored:
            logprobs = torch.log_softmax(logits[len(rows.next_token):], dim=-1)
            targets = torch.tensor([seq.token_ids[p + 1] for seq, p in rows.scored], device=logprobs.device)
            values = logprobs.gather(1, targets[:, None]).squeeze(1).tolist()
            for row, ((seq, _), value) in enumerate(zip(rows.scored, values)):
                seq.token_logprobs.append(value)
                if seq.distributions is not None:
                    seq.distributions.append(logprobs[row].cpu())
        for seq, _ in chunks:
            if seq.status is Status.RUNNING and seq.num_pending == 0 and seq.stops_after_prefill:
                self.scheduler.finish(seq, "prefilled", keep_blocks=seq.logits_positions is None)
                out.finished.append(seq)
        return out

    def finish_reason(self, seq: Sequence, token: int) -> str | None:
        p = seq.params
        if (token in self.eos_ids and not p.ignore_eos) or token in p.stop_token_ids:
            return "stop"
        if p.stop:
            text = self.tokenizer.decode(seq.output_ids, skip_special_tokens=True)
            hits = [text.find(s) for s in p.stop if s in text]
            if hits:
                seq.output_text = text[:min(hits)]
                return "stop"
        if len(seq.output_ids) >= p.max_tokens or len(seq) >= self.max_seq_len:
            return "length"
        return None
