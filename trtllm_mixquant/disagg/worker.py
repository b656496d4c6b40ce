"""Worker processes: a context worker (quantized prefill, sends KV), a generation worker (receives
KV, finishes the prompt and decodes in BF16) or a colocated worker (both phases, one KV pool).

A generation worker reserves every block a request can need (prompt plus `max_tokens`) when it
admits it, so the KV a context worker writes into those blocks can never be evicted under it, and
an admitted request is never preempted. Requests wait in FIFO order for blocks to free up.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass

import torch

from trtllm_mixquant.disagg import messages as m
from trtllm_mixquant.disagg.kv_transfer import KVLayoutError
from trtllm_mixquant.engine.core import EngineCore
from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.devices import resolve_device
from trtllm_mixquant.engine.llm import ALL_TOKENS, load_tokenizer_and_eos
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.engine.sequence import Sequence
from trtllm_mixquant.runtime.loader import load_causal_lm
from trtllm_mixquant.runtime.quantized import make_quantized_kernel

log = logging.getLogger(__name__)
ROLES = ("context", "generation", "colocated")


@dataclass(frozen=True)
class WorkerSpec:
    role: str
    name: str
    engine_dir: str
    device: str = "cpu"
    dtype: str = "bfloat16"
    kv_cache_blocks: int | None = None
    max_num_seqs: int = 64
    max_step_tokens: int = 4096
    cuda_graphs: bool = True
    compile_regions: bool = True
    transport: str = "nixl"  # KV transfer: "nixl" or "torch" (torch.distributed)
    rank: int = -1  # torch transport: this worker's rank, the group size and where to meet
    world_size: int = 0
    init_method: str = ""


def build_core(spec: WorkerSpec) -> EngineCore:
    """Load the weights this role needs (context: quantized only; generation: BF16 only; colocated: both)."""
    dirs = resolve_engine_dirs(spec.engine_dir, "bf16" if spec.role == "generation" else "mixquant")
    device, dtype = resolve_device(spec.device), getattr(torch, spec.dtype)
    if spec.role == "context":
        model = load_causal_lm(dirs.context, dirs.context, dtype, device, make_quantized_kernel, precise=False)
    else:
        model = load_causal_lm(dirs.generation, dirs.context if spec.role == "colocated" else None, dtype, device,
                               make_quantized_kernel)
    tokenizer, eos_ids = load_tokenizer_and_eos(dirs.generation)
    num_blocks = spec.kv_cache_blocks or dirs.default_kv_blocks()
    return EngineCore(model, tokenizer, dirs.block_size, dirs.max_seq_len, eos_ids, num_blocks,
                      spec.max_num_seqs, spec.max_step_tokens, spec.cuda_graphs, spec.compile_regions)


class Worker:
    def __init__(self, spec: WorkerSpec, inbox, outbox):
        self.spec, self.inbox, self.outbox = spec, inbox, outbox
        self.core = build_core(spec)
        self.transfer = None
        if spec.role != "colocated" and spec.transport == "nixl":
            from trtllm_mixquant.disagg.nixl_transfer import NixlKVTransfer  # needs nixl

            self.transfer = NixlKVTransfer(spec.name, self.core.kv)
        elif spec.role != "colocated":
            from trtllm_mixquant.disagg.dist_transfer import TorchDistKVTransfer

            self.transfer = TorchDistKVTransfer(spec.name, self.core.kv, spec.rank, spec.world_size, spec.init_method)
        self.bs = self.core.layout.block_size
        self.seqs: dict[str, Sequence] = {}  # request id -> sequence in the engine
        self.ids: dict[int, str] = {}  # sequence id -> request id
        self.waiting_blocks: deque[m.Admit] = deque()  # generation: admissions waiting for free blocks
        self.receiving: dict[str, tuple[Sequence, int, list[int]]] = {}  # generation: (seq, tokens, blocks) in flight
        self.cancelled_receiving: set[str] = set()
        self.prefills: dict[str, tuple[m.Prefill, float]] = {}  # context: request -> (order, start time)
        self.sending: dict[str, tuple[Sequence, float, int]] = {}  # context: transfers in flight
        self.refused: dict[str, str] = {}  # peer -> why its KV layout was refused
        self.running = True

    # ---- main loop --------------------------------------------------------------------------
    def serve(self) -> None:
        self.outbox.put(m.Ready(self.spec.name, self.transfer.info if self.transfer else None))
        parent = os.getppid()
        while self.running and os.getppid() == parent:  # an orphaned worker exits
            idle = not self.core.has_work() and not self.sending and not self.receiving
            self.drain_inbox(block=idle)
            if self.transfer:
                self.poll_transfers()
            self.admit_waiting()
            if self.core.has_work():
                self.emit(self.core.step())

    def drain_inbox(self, block: bool) -> None:
        try:
            msg = self.inbox.get(timeout=0.05) if block else self.inbox.get_nowait()
            while True:
                self.handle_safely(msg)
                msg = self.inbox.get_nowait()
        except queue.Empty:
            pass

    def handle_safely(self, msg) -> None:
        """A message that fails fails its request (or is logged), never the worker."""
        try:
            self.handle(msg)
        except Exception as err:
            request_id = getattr(msg, "request_id", None)
            log.exception("%s failed", type(msg).__name__)
            if request_id is not None:
                self.outbox.put(m.Failed(self.spec.name, request_id, f"{type(err).__name__}: {err}"))

    def handle(self, msg) -> None:
        if isinstance(msg, m.Admit):
            self.waiting_blocks.append(msg)
        elif isinstance(msg, m.Prefill):
            if msg.dest in self.refused:
                raise KVLayoutError(self.refused[msg.dest])
            seq = Sequence(msg.token_ids, SamplingParams(max_tokens=1), ALL_TOKENS, stops_after_prefill=True)
            self.track(msg.request_id, seq)
            self.prefills[msg.request_id] = (msg, time.monotonic())
            self.core.add(seq)
        elif isinstance(msg, m.Connect):
            for peer in msg.peers:
                try:
                    self.transfer.connect(peer)
                except KVLayoutError as err:
                    self.refused[peer.agent_name] = str(err)
                    log.error("%s", err)
                except Exception:  # a peer that died meanwhile must not take this worker down
                    log.exception("could not connect to %s", peer.agent_name)
        elif isinstance(msg, m.Cancel):
            self.cancel(msg.request_id)
        elif isinstance(msg, m.ExpectKV):
            _, _, dst = self.receiving[msg.request_id]
            self.transfer.expect(msg.request_id, msg.source_rank, dst)
        elif isinstance(msg, m.ReleaseReceiving):
            self.drop_receiving(msg.request_id)
        elif isinstance(msg, m.Shutdown):
            self.running = False

    def track(self, request_id: str, seq: Sequence) -> None:
        self.seqs[request_id] = seq
        self.ids[seq.id] = request_id

    def untrack(self, seq: Sequence) -> str:
        request_id = self.ids.pop(seq.id)
        self.seqs.pop(request_id, None)
        return request_id

    # ---- generation side ----------------------------------------------------------------------
    def admit_waiting(self) -> None:
        while self.waiting_blocks:
            msg = self.waiting_blocks[0]
            seq = Sequence(msg.token_ids, msg.params, msg.quantized_until)
            blocks = self.core.blocks
            blocks.match_prefix(seq)
            total = min(len(msg.token_ids) + msg.params.max_tokens, self.core.max_seq_len)
            if not blocks.allocate(seq, total - seq.num_computed):
                blocks.release(seq)
                if blocks.num_blocks < -(-total // self.bs):
                    self.waiting_blocks.popleft()
                    self.outbox.put(m.Failed(self.spec.name, msg.request_id, "the request needs more KV blocks "
                                             "than this worker has; raise kv_cache_blocks"))
                    continue
                return
            self.waiting_blocks.popleft()
            self.track(msg.request_id, seq)
            cached = seq.num_computed
            if msg.receive_until > cached:
                first = cached // self.bs
                dst = seq.block_table[first:-(-msg.receive_until // self.bs)]
                self.receiving[msg.request_id] = (seq, msg.receive_until, dst)
                self.outbox.put(m.Admitted(self.spec.name, msg.request_id, cached, first, dst))
            else:
                self.core.add(seq)
                self.outbox.put(m.Admitted(self.spec.name, msg.request_id, cached, -1, []))

    def drop_receiving(self, request_id: str) -> None:
        seq, _, _ = self.receiving.pop(request_id, (None, 0, None))
        self.cancelled_receiving.discard(request_id)
        if seq is not None:
            self.untrack(seq)
            self.core.blocks.release(seq)

    # ---- transfers -------------------------------------------------------------------------
    def poll_transfers(self) -> None:
        for request_id in self.transfer.poll_received():
            if request_id in self.cancelled_receiving:
                self.drop_receiving(request_id)
            elif request_id in self.receiving:
                seq, until, _ = self.receiving.pop(request_id)
                seq.num_computed = until
                self.core.add(seq)
        for request_id, ok in self.transfer.poll_sent():
            seq, started, nbytes = self.sending.pop(request_id)
            self.core.blocks.release(seq)  # its blocks stay in the prefix cache
            self.outbox.put(m.Sent(self.spec.name, request_id, nbytes, started, time.monotonic(), ok))

    def start_send(self, seq: Sequence) -> None:
        request_id = self.untrack(seq)
        order, started = self.prefills.pop(request_id)
        if self.core.kv.k.is_cuda:
            torch.cuda.current_stream().synchronize()  # the KV must be written before NIXL reads it
        now = time.monotonic()
        self.outbox.put(m.Prefilled(self.spec.name, request_id, seq.num_cached_prompt,
                                    len(seq) - seq.num_cached_prompt, started, now))
        src = seq.block_table[order.first_block:order.first_block + len(order.dst_blocks)]
        nbytes = self.transfer.send(request_id, src, order.dest, order.dst_blocks)
        self.sending[request_id] = (seq, now, nbytes)
        if self.spec.transport == "torch":
            self.outbox.put(m.KVSending(self.spec.name, request_id))

    # ---- outputs -----------------------------------------------------------------------------
    def emit(self, out) -> None:
        now = time.monotonic()
        finished = {seq.id for seq in out.finished}
        for seq in out.new_tokens:
            reason = seq.finish_reason if seq.id in finished else None
            request_id = self.ids[seq.id]
            self.outbox.put(m.Tokens(self.spec.name, request_id, [seq.token_ids[-1]], reason,
                                     seq.num_cached_prompt, now))
            if reason:
                self.untrack(seq)
        for seq in out.finished:
            if seq.finish_reason == "prefilled":
                self.start_send(seq)

    def cancel(self, request_id: str) -> None:
        if request_id in self.receiving:
            self.cancelled_receiving.add(request_id)  # blocks are freed once the KV can no longer land
            return
        self.waiting_blocks = deque(a for a in self.waiting_blocks if a.request_id != request_id)
        seq = self.seqs.get(request_id)
        sent = request_id in self.sending
        if seq is not None:
            self.untrack(seq)
            self.prefills.pop(request_id, None)
            self.core.abort(seq)
        if self.spec.role == "context":
            self.outbox.put(m.Cancelled(self.spec.name, request_id, kv_sent=sent))


def worker_main(spec: WorkerSpec, inbox, outbox) -> None:
    """Process entry point. Ctrl-C and SIGTERM go to the orchestrator, which stops its workers
    after letting in-flight requests finish; a worker ignores them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {spec.name} %(levelname)s %(message)s")
    if spec.device == "cpu":
        torch.set_num_threads(1)  # several workers share the host's cores
    try:
        worker = Worker(spec, inbox, outbox)
    except Exception:  # report the failure to start instead of dying silently
        outbox.put(m.Ready(spec.name, None, error=traceback.format_exc()))
        return
    worker.serve()
