"""KV-cache block allocation with reference counts and a prefix cache.

A full block is registered under a hash of (previous block's hash, its tokens, how many of its
tokens were computed with the quantized weights), so a later request with the same prefix under
the same phase rule reuses its KV instead of prefilling it again. Freed blocks keep their contents
until they are handed out again (least recently freed first). Once `events` is a list, every block
entering or leaving the prefix cache is recorded there (`KVEvent`) for a KV-aware router.
"""

from __future__ import annotations

from collections import OrderedDict

from trtllm_mixquant.engine.base import KVEvent
from trtllm_mixquant.engine.sequence import Sequence
from trtllm_mixquant.manifest import KVCacheLayout


class BlockManager:
    def __init__(self, num_blocks: int, layout: KVCacheLayout):
        self.num_blocks, self.layout, self.block_size = num_blocks, layout, layout.block_size
        self.ref_count = [0] * num_blocks
        self.block_hash: list[int | None] = [None] * num_blocks
        self.cached: dict[int, int] = {}  # hash -> block
        self.free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self.registered: dict[int, tuple[int, int | None]] = {}  # seq id -> (full blocks hashed, last hash)
        self.events: list[KVEvent] | None = None  # None: not recorded

    @property
    def num_free(self) -> int:
        return len(self.free)

    def _block(self, seq: Sequence, index: int) -> tuple[tuple[int, ...], int]:
        """A block's tokens and how many of them are quantized."""
        start = index * self.block_size
        quantized = min(max(seq.quantized_until - start, 0), self.block_size)
        return tuple(seq.token_ids[start:start + self.block_size]), quantized

    def _hash(self, seq: Sequence, index: int, prev: int | None) -> int:
        return hash((prev, *self._block(seq, index)))

    def _take(self, block: int) -> int:
        if block in self.free:
            del self.free[block]
        self.ref_count[block] += 1
        return block

    def match_prefix(self, seq: Sequence) -> None:
        """Attach the cached blocks that hold the longest prefix of `seq` (never its last prompt token)."""
        prev = None
        reusable = 0 if seq.prompt_logprobs is not None else (seq.num_prompt_tokens - 1) // self.block_size
        for index in range(reusable):  # prompt logprobs need every prompt position computed
            digest = self._hash(seq, index, prev)
            if digest not in self.cached:
                break
            seq.block_table.append(self._take(self.cached[digest]))
            prev = digest
        seq.num_computed = seq.num_cached_prompt = len(seq.block_table) * self.block_size
        self.registered[seq.id] = (len(seq.block_table), prev)

    def blocks_needed(self, seq: Sequence, num_new_tokens: int) -> int:
        total = self.layout.blocks_for(seq.num_computed + num_new_tokens)
        return max(total - len(seq.block_table), 0)

    def allocate(self, seq: Sequence, num_new_tokens: int) -> bool:
        """Give `seq` blocks for `num_new_tokens` more tokens; False (nothing changed) if too few are free."""
        needed = self.blocks_needed(seq, num_new_tokens)
        if needed > len(self.free):
            return False
        for _ in range(needed):
            block, _ = self.free.popitem(last=False)
            if self.block_hash[block] is not None:
                self.cached.pop(self.block_hash[block], None)
                if self.events is not None:
                    self.events.append(KVEvent("removed", self.block_hash[block]))
                self.block_hash[block] = None
            self.ref_count[block] = 1
            seq.block_table.append(block)
        return True

    def register_full_blocks(self, seq: Sequence) -> None:
        """Hash the blocks of `seq` that became full of computed KV since the last call."""
        done, prev = self.registered.get(seq.id, (0, None))
        full = seq.num_computed // self.block_size
        for index in range(done, full):
            parent, prev = prev, self._hash(seq, index, prev)
            block = seq.block_table[index]
            if prev not in self.cached:
                self.cached[prev] = block
                self.block_hash[block] = prev
                if self.events is not None:
                    self.events.append(KVEvent("stored", prev, parent, *self._block(seq, index)))
        self.registered[seq.id] = (full, prev)

    def release(self, seq: Sequence) -> None:
        """Drop `seq`'s references; unreferenced blocks become free (their cached KV stays reusable)."""
        for block in reversed(seq.block_table):
            self.ref_count[block] -= 1
            if self.ref_count[block] == 0:
                self.free[block] = None
        seq.block_table = []
        seq.num_computed = 0
        self.registered.pop(seq.id, None)

    def check(self, holders: list[Sequence]) -> None:
        """Assert that every block is free or held, with a reference count equal to its holders."""
        held = [0] * self.num_blocks
        for seq in holders:
            for block in seq.block_table:
                held[block] += 1
        assert held == self.ref_count, "reference counts differ from the blocks sequences hold"
        free = {b for b in range(self.num_blocks) if held[b] == 0}
        assert free == set(self.free), f"free list {sorted(self.free)} != unreferenced blocks {sorted(free)}"
