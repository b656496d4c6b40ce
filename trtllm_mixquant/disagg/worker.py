"""Worker processes: a context worker (quantized prefill, sends KV), a generation worker (receives
KV, finishes the prompt and decodes in BF16) or a colocated worker (both phases, one KV pool).

A worker drives an `EngineBackend`, moves KV with a `KVTransport` and talks to the orchestrator
through a `WorkerChannel`; it knows none of their implementations. A tensor-parallel worker is a
group of rank processes: this code runs on rank 0, and the others follow it (`rank_main`,
`engine.ranks`).

KV ownership. A generation worker reserves every block a request can need (prompt plus
`max_tokens`) when it admits it, so the KV a context worker writes into those blocks can never be
evicted under it, and an admitted request is never preempted. Requests wait in FIFO order for
blocks to free up. Once a context worker may be writing into a reservation, its blocks are freed
only when the KV has landed or the orchestrator says it never will (`KVWontCome`); a context
worker frees a request's blocks once their transfer has ended. Whatever a request carries can fail
only that request, never the worker.

Push or pull. The one-host orchestrator reserves the generation worker's blocks first and the
context worker writes into them. Under Dynamo the generation worker is picked once the prefill is
done, so the context worker holds the prefilled blocks (`Prefill` without a destination) and the
generation worker reads them (`Admit.source`); the holder frees them when the read has ended, or
after `WorkerSpec.hold_seconds` if nobody came for them.
"""

from __future__ import annotations

import logging
import signal
import time
import traceback
from collections import deque

import torch

from trtllm_mixquant.disagg import messages as m
from trtllm_mixquant.disagg.channel import WorkerChannel
from trtllm_mixquant.disagg.config import WorkerSpec
from trtllm_mixquant.engine import create_backend
from trtllm_mixquant.engine.base import EngineRequest, RequestUpdate
from trtllm_mixquant.engine.phase import ALL_TOKENS
from trtllm_mixquant.engine.ranks import follow, join, rank_device
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.errors import InvalidRequest, ServingError
from trtllm_mixquant.runtime.parallel import TPGroup
from trtllm_mixquant.transfer import TRANSPORTS
from trtllm_mixquant.transfer.base import KVLayoutError
from trtllm_mixquant.transfer.group import open_transport

log = logging.getLogger(__name__)
USAGE_INTERVAL = 0.05  # seconds between block-usage reports while busy
IDLE_WAIT, HOLDING_WAIT = 0.05, 0.0005  # seconds the loop waits for a message when it has nothing to compute
GONE = "the context worker that prefilled this request is gone; retry"


def open_rank(spec: WorkerSpec, rank: int):
    """This rank's backend and KV transport (rank 0's is the worker's; see `engine.ranks`)."""
    tp = TPGroup()
    if spec.ranks:
        tp = join(spec.ranks[rank], rank_device(spec.engine.device, rank))
    elif spec.tp_size > 1:
        raise ValueError(f"{spec.id} has tensor_parallel_size {spec.tp_size} but no rank plans; its launcher "
                         "must give each rank one (`WorkerSpec.ranks`)")
    backend = create_backend(spec.engine, spec.role, tp=tp)
    transport = None
    if spec.transport:
        transport = open_transport(TRANSPORTS.resolve(spec.transport), spec.id, backend.kv_cache,
                                   spec.transport_options_of(rank), tp)
    return tp, backend, transport


class Worker:
    def __init__(self, spec: WorkerSpec, channel: WorkerChannel):
        self.spec, self.channel, self.id = spec, channel, spec.id
        _, self.backend, self.transport = open_rank(spec, 0)
        self.waiting: deque[m.Admit] = deque()  # generation: admissions waiting for free blocks
        self.receiving: dict[str, bool] = {}  # generation: reserved, KV may land -> cancelled meanwhile
        self.active: set[str] = set()  # requests the backend computes (not waiting for KV, not being sent)
        self.runnable: dict[str, float] = {}  # until its first token: when a request could start
        self.prefills: dict[str, tuple[m.Prefill, float]] = {}  # context: order and its arrival time
        self.sending: dict[str, tuple[float, int]] = {}  # context: transfers in flight (start, bytes)
        self.refused: dict[str, str] = {}  # peer -> why its KV layout was refused
        self.holding: dict[str, float] = {}  # context, pull: prefilled requests waiting for a reader -> deadline
        self.arrivals: dict[str, float] = {}  # generation, pull: when an admission that reads its KV arrived
        if spec.kv_events:
            self.backend.enable_kv_events()
        self.last_usage, self.last_report = None, 0.0
        self.running = True

    # ---- main loop --------------------------------------------------------------------------
    def serve(self) -> None:
        self.channel.send(m.Ready(self.id, self.transport.info if self.transport else None, self.backend.block_usage()))
        while self.running and not self.channel.closed():
            busy = self.backend.has_work() or self.sending or self.receiving
            # Holding KV for a reader: wake often, since on host memory a read progresses only while
            # the holder polls its transport (a 50 ms nap added 50 ms to every pulled request's TTFT).
            self.drain(0 if busy else HOLDING_WAIT if self.holding else IDLE_WAIT)
            if self.transport:
                self.poll_transfers()
            self.admit_waiting()
            if self.backend.has_work():
                self.step()
            self.report_usage()
            if self.spec.kv_events:
                self.report_kv_events()
        self.backend.close()

    def drain(self, wait: float) -> None:
        msg = self.channel.recv(wait)
        while msg is not None:
            self.handle_safely(msg)
            msg = self.channel.recv(0)

    def handle_safely(self, msg) -> None:
        """A message that fails fails its request (or is logged), never the worker."""
        try:
            self.handle(msg)
        except Exception as err:
            log.exception("%s failed", type(msg).__name__)
            if getattr(msg, "request_id", None) is not None:
                self.fail(msg.request_id, err)

    def handle(self, msg) -> None:
        if isinstance(msg, m.Admit):
            if msg.source is not None:
                self.arrivals[msg.request_id] = time.monotonic()
            self.waiting.append(msg)
        elif isinstance(msg, m.Prefill):
            if msg.dest in self.refused:
                raise KVLayoutError(self.refused[msg.dest])
            self.backend.add(EngineRequest(msg.request_id, msg.token_ids,
                                           SamplingParams(max_tokens=1, prompt_logprobs=msg.prompt_logprobs),
                                           ALL_TOKENS, prefill_only=True, following_token=msg.following_token))
            self.prefills[msg.request_id] = (msg, time.monotonic())
            self.active.add(msg.request_id)
        elif isinstance(msg, m.Cancel):
            self.cancel(msg.request_id, msg.kv_may_arrive)
        elif isinstance(msg, m.Release):
            self.let_go(msg.request_id, msg.source)
        elif isinstance(msg, m.KVWontCome):
            if msg.request_id in self.receiving:
                self.release(msg.request_id)
        elif isinstance(msg, m.Connect):
            self.connect(msg.peers)
        elif isinstance(msg, m.CheckBlocks):
            self.check_blocks()
        elif isinstance(msg, m.Shutdown):
            self.running = False

    def connect(self, peers) -> None:
        for peer in peers:
            try:
                self.transport.connect(peer)
            except KVLayoutError as err:
                self.refused[peer.name] = str(err)
                log.error("%s", err)
            except Exception:  # a peer that died meanwhile must not take this worker down
                log.exception("could not connect to %s", peer.name)

    # ---- generation side ----------------------------------------------------------------------
    def admit_waiting(self) -> None:
        while self.waiting:
            msg = self.waiting[0]
            request = EngineRequest(msg.request_id, msg.token_ids, msg.params, msg.quantized_until)
            try:
                reservation = self.backend.reserve(request, msg.receive_until)
            except Exception as err:
                self.fail(msg.request_id, err)  # drops it from `waiting` and lets its KV source go
                continue
            if reservation is None:
                return  # wait for blocks to free up
            self.waiting.popleft()
            try:
                self.receive(msg, reservation)
            except Exception as err:
                self.fail(msg.request_id, err)
                continue
            self.channel.send(m.Admitted(self.id, msg.request_id, reservation.cached_tokens, reservation.first_block,
                                         reservation.blocks))

    def receive(self, msg: m.Admit, reservation) -> None:
        """Wait for the KV in the reserved blocks (push), or start reading it from its holder (pull)."""
        arrived, source = self.arrivals.pop(msg.request_id, None), msg.source
        if not reservation.blocks:  # nothing to receive: the prefix cache holds it all
            if source is not None:
                self.let_go(msg.request_id, source)
            self.start(msg.request_id)
            return
        if source is None:
            self.receiving[msg.request_id] = False
            self.transport.expect(msg.request_id, reservation.blocks)
            return
        if time.monotonic() - arrived > source.hold_seconds / 2:  # the holder may have freed the blocks meanwhile
            self.let_go(msg.request_id, source)
            raise ServingError(f"this request waited too long for KV blocks; its prefilled KV on {source.peer.name} "
                               "may be gone (retry, or give the generation workers more --kv-cache-blocks)")
        first = reservation.first_block
        try:
            self.transport.connect(source.peer)  # checks the layouts (KVLayoutError), once per peer
            self.transport.fetch(msg.request_id, source.peer.name,
                                 source.blocks[first:first + len(reservation.blocks)], reservation.blocks)
        except KVLayoutError:
            raise
        except Exception as err:
            log.error("could not read the KV of %s from %s: %s", msg.request_id, source.peer.name, err)
            raise ServingError(GONE) from err
        self.receiving[msg.request_id] = False

    def let_go(self, request_id: str, source: m.KVSource) -> None:
        """Pull: tell the holder of this request's KV that it will not be read."""
        try:
            self.transport.release(request_id, source.peer)
        except Exception as err:  # the holder frees it after its hold_seconds anyway
            log.warning("could not tell %s to free the KV of %s: %s", source.peer.name, request_id, err)

    def start(self, request_id: str) -> None:
        self.active.add(request_id)
        self.runnable[request_id] = time.monotonic()

    def release(self, request_id: str) -> None:
        """A reservation whose KV will not land (any more): free its blocks."""
        self.receiving.pop(request_id, None)
        self.transport.forget(request_id)
        self.backend.abort(request_id)

    # ---- transfers -------------------------------------------------------------------------
    def poll_transfers(self) -> None:
        landed = [(request_id, True) for request_id in self.transport.poll_received()]
        if self.transport.supports_pull:
            landed += self.transport.poll_fetched()
            for request_id in self.transport.poll_read():
                self.unhold(request_id)
            now = time.monotonic()
            for request_id in [r for r, deadline in self.holding.items() if deadline < now]:
                log.warning("nobody read the KV of %s within %.0f s; freeing it", request_id, self.spec.hold_seconds)
                self.unhold(request_id)
        for request_id, ok in landed:
            if request_id not in self.receiving:
                continue
            if self.receiving.pop(request_id):  # cancelled while the KV was on its way
                self.backend.abort(request_id)
            elif ok:
                self.backend.kv_arrived(request_id)
                self.start(request_id)
            else:
                self.fail(request_id, ServingError(GONE))
        for request_id, ok in self.transport.poll_sent():
            started, nbytes = self.sending.pop(request_id)
            self.backend.abort(request_id)  # its blocks stay in the prefix cache
            self.channel.send(m.Sent(self.id, request_id, nbytes, time.monotonic() - started, ok))

    def start_send(self, update: RequestUpdate) -> None:
        request_id = update.request_id
        order, arrived = self.prefills.pop(request_id)
        self.active.discard(request_id)
        if self.backend.kv_cache.k.is_cuda:
            torch.cuda.current_stream().synchronize()  # the KV must be written before the transport reads it
        now = time.monotonic()
        if order.dest is None:  # pull: hold the blocks for a reader
            self.holding[request_id] = now + self.spec.hold_seconds
            self.channel.send(m.Prefilled(self.id, request_id, update.num_cached_prompt, update.num_computed_prompt,
                                          now - arrived, self.backend.kv_blocks(request_id), update.prompt_logprobs))
            return
        self.channel.send(m.Prefilled(self.id, request_id, update.num_cached_prompt, update.num_computed_prompt,
                                      now - arrived, prompt_logprobs=update.prompt_logprobs))
        src = self.backend.kv_blocks(request_id)[order.first_block:order.first_block + len(order.dst_blocks)]
        try:
            nbytes = self.transport.send(request_id, src, order.dest, order.dst_blocks)
        except Exception as err:  # e.g. the receiver died: this request fails, the worker keeps serving
            log.error("KV transfer of %s to %s could not start: %s", request_id, order.dest, err)
            self.backend.abort(request_id)
            self.channel.send(m.Sent(self.id, request_id, 0, 0.0, ok=False))
            return
        self.sending[request_id] = (now, nbytes)

    # ---- steps and outputs -------------------------------------------------------------------
    def step(self) -> None:
        try:
            updates = self.backend.step()
        except Exception as err:  # which request broke the step is unknown: fail those in it, keep serving
            log.exception("engine step failed")
            for request_id in list(self.active):
                self.fail(request_id, err)
            return
        for update in updates:
            if update.finish_reason == "prefilled":
                self.start_send(update)
                continue
            if update.finish_reason:
                self.active.discard(update.request_id)
            started = self.runnable.pop(update.request_id, None)  # only until the first token
            self.channel.send(m.Tokens(self.id, update.request_id, update.token_ids, update.finish_reason,
                                       update.num_cached_prompt, None if started is None else time.monotonic() - started,
                                       update.logprobs, update.prompt_logprobs))

    def unhold(self, request_id: str) -> None:
        if self.holding.pop(request_id, None) is not None:
            self.backend.abort(request_id)  # its blocks stay in the prefix cache

    def cancel(self, request_id: str, kv_may_arrive: bool) -> None:
        if request_id in self.receiving and not kv_may_arrive:
            self.release(request_id)
            return
        sending = self.forget(request_id)
        if self.spec.role == "context":
            self.channel.send(m.Cancelled(self.id, request_id, kv_sent=sending))

    def fail(self, request_id: str, err: Exception) -> None:
        """End one request with an error; the client sees the message of an error we raise on purpose,
        and a plain statement for anything else (logged here with its traceback)."""
        self.forget(request_id)
        if isinstance(err, (ServingError, KVLayoutError)):
            message = str(err)
        else:
            message = f"the {self.spec.role} worker could not process this request"
        self.channel.send(m.Failed(self.id, request_id, message, invalid=isinstance(err, InvalidRequest)))

    def forget(self, request_id: str) -> bool:
        """Drop a request. Its blocks are freed now, or once no KV can still move into them (a
        reservation a context worker may be writing into) or out of them (a transfer in flight, which
        it returns True for)."""
        for admission in [a for a in self.waiting if a.request_id == request_id]:
            self.waiting.remove(admission)
            if admission.source is not None:
                self.let_go(request_id, admission.source)
        for table in (self.runnable, self.prefills, self.arrivals, self.holding):
            table.pop(request_id, None)
        self.active.discard(request_id)
        if request_id in self.receiving:
            self.receiving[request_id] = True
            return False
        sending = request_id in self.sending
        if not sending:
            self.backend.abort(request_id)
        return sending

    def report_usage(self) -> None:
        usage, now = self.backend.block_usage(), time.monotonic()
        if usage != self.last_usage and (now - self.last_report > USAGE_INTERVAL or not self.backend.has_work()):
            self.channel.send(m.Usage(self.id, usage))
            self.last_usage, self.last_report = usage, now

    def report_kv_events(self) -> None:
        events = self.backend.kv_events()
        if events:
            self.channel.send(m.KVEvents(self.id, events))

    def check_blocks(self) -> None:
        try:
            self.backend.check_blocks()
            error = None
        except AssertionError as e:
            error = str(e)
        self.channel.send(m.BlocksChecked(self.id, error))


def _process_setup(spec: WorkerSpec, label: str) -> None:
    """Ctrl-C and SIGTERM go to the orchestrator, which stops its workers after letting in-flight
    requests finish; a worker ignores them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {label} %(levelname)s %(message)s")
    logging.getLogger("nixl").setLevel(logging.WARNING)  # its agent start-up notes
    if spec.engine.device == "cpu":
        torch.set_num_threads(1)  # several workers share the host's cores


def rank_main(spec: WorkerSpec, rank: int) -> None:
    """Process entry point of rank `rank` > 0 of a tensor-parallel worker: it follows rank 0."""
    _process_setup(spec, f"{spec.id}.r{rank}")
    tp, backend, transport = open_rank(spec, rank)
    follow(tp, backend.runner, transport)


def worker_main(spec: WorkerSpec, channel: WorkerChannel) -> None:
    """Process entry point of a worker (of its rank 0 under tensor parallelism)."""
    _process_setup(spec, spec.id)
    try:
        worker = Worker(spec, channel)
    except Exception:  # report the failure to start instead of dying silently
        channel.send(m.Ready(spec.id, None, error=traceback.format_exc()))
        return
    worker.serve()
