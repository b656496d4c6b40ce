"""Asynchronous scheduling: the host schedules and launches step n + 1 while the GPU still runs step n.

Without it the host waits for each step's sampled tokens before it builds the next step, and the GPU
waits for the host in between (0.8 ms a step at 32 sequences on our H200). With it, a step's sampled
tokens stay on the device (`InFlight`) and each of their sequences gets a placeholder token,
-1 - row, so the scheduler and `build_step` treat the token as known; the next step's input ids
take the real tokens from the device (`InFlight.fill`). Once that next step is launched, the host
waits for the earlier step alone (an event recorded after its sampling) and puts the real tokens in
place of the placeholders (`InFlight.wait`).

What that costs, as in vLLM's async scheduling: a sequence that one of those tokens ends (EOS, a stop
token) has had one more step computed for it, whose work for it is dropped; a sequence that the
token ends by length is known in advance and held out of the next step. Only rows that need nothing
of the host between steps are deferred (`deferrable`); a step with penalties, a grammar, logprobs or
prompt logprobs samples after the wait, as without overlap. One rank only: other tensor-parallel
ranks receive the step's input ids from rank 0's host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trtllm_mixquant.engine.sequence import Sequence


def deferrable(seq: Sequence) -> bool:
    """Whether a sequence's next token can be sampled on the device and read by the host a step later."""
    p = seq.params
    return seq.matcher is None and not p.penalized and p.logprobs is None and seq.prompt_logprobs is None


@dataclass
class InFlight:
    """One step's sampled tokens, not yet read by the host."""

    seqs: list[Sequence]  # row i's sequence
    positions: list[int]  # where row i's placeholder stands in its sequence's token_ids
    tokens: torch.Tensor  # [B] int64, on the device
    host: torch.Tensor  # [B] int64, on the host once `ready` is reached (pinned on CUDA)
    ready: torch.cuda.Event | None  # recorded after the copy to `host` (None on CPU: already there)

    @classmethod
    def start(cls, seqs: list[Sequence], tokens: torch.Tensor) -> InFlight:
        """Copy tokens [B] to the host without waiting, and append each sequence's placeholder."""
        if tokens.is_cuda:
            host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
            host.copy_(tokens, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record()
        else:
            host, ready = tokens, None
        positions = [len(seq.token_ids) for seq in seqs]
        for row, seq in enumerate(seqs):
            seq.token_ids.append(-1 - row)
        return cls(seqs, positions, tokens, host, ready)

    def fill(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids [T] (on the host, placeholders of this step among them) -> on the device, with the
        sampled tokens in the placeholders' place; nothing waits for the GPU."""
        ids = input_ids.to(self.tokens.device, non_blocking=True)
        return torch.where(ids < 0, self.tokens[(-1 - ids).clamp_min(0)], ids)

    def wait(self) -> list[int]:
        """The sampled tokens, once the step that sampled them is done on the GPU."""
        if self.ready is not None:
            self.ready.synchronize()
        return self.host.tolist()


def overlap_scheduling(setting: bool | None, device: torch.device, tp_size: int) -> bool:
    """Whether an engine schedules asynchronously: `setting` (EngineConfig.async_scheduling; True only
    on one rank), where None is on for one GPU and off on the CPU, where the host runs each step
    itself (nothing would overlap, and every token would come out a step late)."""
    if setting is None:
        return device.type == "cuda" and tp_size == 1
    return setting
