"""Continuous batching: which sequences run in the next step, and how many of their tokens.

Each step has a token budget. Running sequences go first (a decoding sequence needs one token, a
sequence part-way through its prompt the next chunk), then waiting sequences are admitted, their
prompts cut into chunks that fit the remaining budget (chunked prefill). When KV blocks run out,
the most recently admitted sequence is preempted: its blocks are freed and it is recomputed later
(its generated tokens are kept, so its output does not change).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

from trtllm_mixquant.engine.block_manager import BlockManager
from trtllm_mixquant.engine.sequence import Sequence, Status


class Scheduler:
    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_step_tokens: int):
        self.blocks = block_manager
        self.max_num_seqs, self.max_step_tokens = max_num_seqs, max_step_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self, holding: Collection[Sequence] = ()) -> list[tuple[Sequence, int]]:
        """Returns (sequence, tokens to compute this step) pairs, allocating their KV blocks.
        holding: running sequences left out of this step (their last token, not read yet, ends them)."""
        budget, chunks = self.max_step_tokens, []
        for seq in list(self.running):
            if seq not in self.running or seq in holding:
                continue  # preempted by an earlier sequence of this loop, or held
            n = min(seq.num_pending, budget)
            if n == 0:
                break
            while not self.blocks.allocate(seq, n):
                victim = self.running[-1]
                self._preempt(victim)
                if victim is seq:
                    break
            if seq in self.running:
                chunks.append((seq, n))
                budget -= n
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if not seq.block_table:
                self.blocks.match_prefix(seq)
            n = min(seq.num_pending, budget)
            if not self.blocks.allocate(seq, n):
                if not self.running and not chunks:
                    raise RuntimeError("the KV cache is too small for a single request; raise kv_cache_blocks")
                break
            self.waiting.popleft()
            seq.status = Status.RUNNING
            self.running.append(seq)
            chunks.append((seq, n))
            budget -= n
        return chunks

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.blocks.release(seq)
        seq.status = Status.WAITING
        self.waiting.appendleft(seq)

    def finish(self, seq: Sequence, reason: str, keep_blocks: bool = False) -> None:
        """Retire a running sequence, or a preempted one (asynchronous scheduling reads its last token
        after the next step's preemptions); `keep_blocks` leaves its KV allocated (to be sent elsewhere)."""
        seq.status, seq.finish_reason = Status.FINISHED, reason
        (self.running if seq in self.running else self.waiting).remove(seq)
        if not keep_blocks:
            self.blocks.release(seq)
