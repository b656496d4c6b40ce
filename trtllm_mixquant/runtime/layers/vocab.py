"""Vocabulary-parallel embedding and LM head: each rank holds the rows [start, stop) of the vocabulary
(`parallel.vocab_range`), padded to an equal share."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trtllm_mixquant.runtime.parallel import TPGroup, vocab_range


class VocabEmbedding(torch.nn.Module):
    """ids [T] -> [T, hidden]. A token outside this rank's rows embeds to zero here; the all-reduce
    adds the one rank that holds it."""

    def __init__(self, vocab_size: int, hidden_size: int, tp: TPGroup):
        super().__init__()
        self.start, self.stop, share = vocab_range(vocab_size, tp)
        self.weight = torch.nn.Parameter(torch.zeros(share, hidden_size), requires_grad=False)
        self.tp = tp

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.tp.size == 1:
            return F.embedding(ids, self.weight)
        local = ids - self.start
        outside = (local < 0) | (local >= self.stop - self.start)
        x = F.embedding(local.masked_fill(outside, 0), self.weight).masked_fill(outside[:, None], 0)
        return self.tp.all_reduce(x)


class VocabHead(torch.nn.Module):
    """x [R, hidden] -> logits [R, vocab] (fp32) on rank 0, None on the others: each rank computes
    its rows' logits and rank 0 gathers them."""

    def __init__(self, vocab_size: int, hidden_size: int, tp: TPGroup):
        super().__init__()
        self.start, self.stop, share = vocab_range(vocab_size, tp)
        self.weight = torch.nn.Parameter(torch.zeros(share, hidden_size), requires_grad=False)
        self.vocab_size, self.tp = vocab_size, tp

    def forward(self, x: torch.Tensor) -> torch.Tensor | None:
        logits = self.tp.gather_columns(F.linear(x, self.weight).float())
        return None if logits is None else logits[:, :self.vocab_size]
