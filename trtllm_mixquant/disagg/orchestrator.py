"""The orchestrator: starts and supervises workers, routes requests, relays their tokens.

Topologies:
- `disaggregated`: N context workers (quantized prefill) and M generation workers (BF16); a
  request's KV moves from the context worker that prefilled it to the generation worker that decodes
  it. Mode "bf16" skips the context worker.
- `colocated`: M workers each holding both engines and one KV pool (no transfer).

Multi-turn sessions: a turn's prompt is the whole conversation, and the phase rule applies to it as
to any prompt (all but its last k tokens quantized). Both workers keep a prefix cache keyed by the
tokens *and* the phase of each block, and a session sticks to the same workers, so the context
worker only prefills what the earlier turns did not already prefill in quantized form (the
previous answer, which was decoded in BF16, and the new message), and only the blocks the
generation worker does not already hold are transferred. Results equal a fresh mixquant prefill of
the whole conversation.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing as mp
import socket
import threading
import time
from dataclasses import dataclass, field

from trtllm_mixquant.disagg import messages as m
from trtllm_mixquant.disagg.kv_transfer import transport_available
from trtllm_mixquant.disagg.requests import Event, RequestHandle, RequestState
from trtllm_mixquant.disagg.worker import WorkerSpec, worker_main
from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.engine.llm import quantized_until
from trtllm_mixquant.engine.sampling import SamplingParams

log = logging.getLogger(__name__)
TOPOLOGIES = ("disaggregated", "colocated")


def resolve_transport(kind: str) -> str:
    """"auto" picks NIXL where it is installed, torch.distributed otherwise."""
    if kind not in ("auto", "nixl", "torch"):
        raise ValueError(f"kv_transport must be auto, nixl or torch (got {kind!r})")
    if kind == "auto":
        return "nixl" if transport_available("nixl") else "torch"
    if not transport_available(kind):
        raise ValueError("kv_transport 'nixl' needs the nixl package: pip install nixl")
    return kind


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class QueueFull(RuntimeError):
    """Too many requests in flight; retry later (HTTP 429)."""


@dataclass(eq=False)
class WorkerHandle:
    spec: WorkerSpec
    process: mp.process.BaseProcess
    inbox: mp.queues.Queue
    pool: object = None
    alive: bool = True

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Counters:
    requests: int = 0
    prompt_tokens: int = 0
    quantized_prefill_tokens: int = 0  # computed by context workers
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    kv_bytes: int = 0
    ttft: list[float] = field(default_factory=list)


class Orchestrator:
    def __init__(self, engine_dir: str, topology: str = "disaggregated", context_workers: int = 1,
                 generation_workers: int = 1, devices: list[str] | None = None, mode: str = "mixquant",
                 num_precise_prompt_tokens: int = 1, max_pending: int = 256, request_timeout: float | None = None,
                 max_retries: int = 1, kv_transport: str = "auto", **worker_options):
        if topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {', '.join(TOPOLOGIES)} (got {topology!r})")
        self.dirs = resolve_engine_dirs(engine_dir, mode if topology == "colocated" else "mixquant")
        self.topology, self.mode, self.k = topology, mode, num_precise_prompt_tokens
        self.max_pending, self.request_timeout, self.max_retries = max_pending, request_timeout, max_retries
        roles = (["colocated"] * generation_workers if topology == "colocated"
                 else ["context"] * context_workers + ["generation"] * generation_workers)
        devices = devices or ["cpu"]
        self.kv_transport = resolve_transport(kv_transport)
        meeting = {"world_size": len(roles), "init_method": f"tcp://127.0.0.1:{free_port()}"} \
            if self.kv_transport == "torch" and topology == "disaggregated" else {}
        counts = dict.fromkeys(roles, 0)
        self.specs = []
        for i, role in enumerate(roles):
            rank = {"rank": i, **meeting} if meeting else {}
            self.specs.append(WorkerSpec(role, f"{role}{counts[role]}", str(engine_dir), devices[i % len(devices)],
                                         transport=self.kv_transport, **rank, **worker_options))
            counts[role] += 1
        self.workers: dict[str, WorkerHandle] = {}
        self.requests: dict[str, RequestState] = {}
        self.sessions: dict[str, dict[str, str]] = {}  # session id -> role -> worker name
        self.counters = Counters()
        self.kv_owed: dict[str, str] = {}  # cancelled request -> generation worker its KV may still reach
        self.ids = itertools.count()
        self.ready = False
        self._outbox = None
        self._stopping = threading.Event()

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self, timeout: float = 600.0) -> None:
        self.loop = asyncio.get_running_loop()
        ctx = mp.get_context("spawn")
        self._outbox = ctx.Queue()
        for spec in self.specs:
            inbox = ctx.Queue()
            process = ctx.Process(target=worker_main, args=(spec, inbox, self._outbox), name=spec.name, daemon=True)
            process.start()
            self.workers[spec.name] = WorkerHandle(spec, process, inbox)
        self._ready_waiters = {name: self.loop.create_future() for name in self.workers}
        self._reader = threading.Thread(target=self._read_outbox, name="orchestrator-reader", daemon=True)
        self._reader.start()
        try:
            await asyncio.wait_for(asyncio.gather(*self._ready_waiters.values()), timeout)
        except BaseException:
            await self.shutdown()
            raise
        for w in self.workers.values():  # context workers write to generation workers, which get notified
            peers = [p.pool for p in self.workers.values() if p.pool is not None and p.spec.role != w.spec.role]
            if w.pool is not None:
                w.inbox.put(m.Connect(peers))
        self._supervisor = asyncio.create_task(self._supervise())
        self.ready = True
        log.info("orchestrator ready: %s", ", ".join(f"{w.name}@{w.spec.device}" for w in self.workers.values()))

    async def shutdown(self) -> None:
        """Stop the workers; requests still in flight end with an error event."""
        self.ready = False
        if getattr(self, "_supervisor", None):
            self._supervisor.cancel()
        for req in list(self.requests.values()):
            self._fail(req, "the server is shutting down")
        for w in self.workers.values():
            if w.process.is_alive():
                w.inbox.put(m.Shutdown())
        for w in self.workers.values():
            await asyncio.to_thread(w.process.join, 10)
            if w.process.is_alive():
                w.process.kill()
        self._stopping.set()

    # ---- client API ----------------------------------------------------------------------------
    async def submit(self, token_ids: list[int], params: SamplingParams, mode: str | None = None,
                     session_id: str | None = None, request_id: str | None = None) -> RequestHandle:
        if not self.ready:
            raise RuntimeError("the orchestrator is not ready yet")
        mode = mode or self.mode
        n = len(token_ids)
        if n == 0:
            raise ValueError("the prompt is empty")
        if n + params.max_tokens > self.dirs.max_seq_len:
            raise ValueError(f"prompt of {n} tokens plus {params.max_tokens} new tokens exceeds the engine's "
                             f"maximum sequence length of {self.dirs.max_seq_len} tokens")
        if self.topology == "disaggregated" and mode == "quantized":
            raise ValueError("mode 'quantized' decodes with the quantized weights, which generation workers do not "
                             "hold; use --topology colocated to compare it")
        if len(self.requests) >= self.max_pending:
            raise QueueFull(f"{len(self.requests)} requests are in flight (limit {self.max_pending}); retry later")
        qu = quantized_until(self.dirs, mode, n, self.k)
        receive = qu if self.topology == "disaggregated" else 0
        req = RequestState(request_id or f"req-{next(self.ids)}", list(token_ids), params, mode, session_id, qu,
                           receive, time.monotonic() + self.request_timeout if self.request_timeout else None)
        self.requests[req.request_id] = req
        self.counters.requests += 1
        self.counters.prompt_tokens += n
        self._dispatch(req)
        return RequestHandle(req)

    def cancel(self, request_id: str) -> None:
        req = self.requests.get(request_id)
        if req is not None:
            self._abandon(req)
            self._finish(req, Event([], "cancelled"))

    def stats(self) -> dict:
        c = self.counters
        return {
            "topology": self.topology,
            "in_flight": len(self.requests),
            "workers": {w.name: {"role": w.spec.role, "device": w.spec.device, "alive": w.alive,
                                 "load": self._load(w.name)}
                        for w in self.workers.values()},
            "requests": c.requests,
            "prompt_tokens": c.prompt_tokens,
            "quantized_prefill_tokens": c.quantized_prefill_tokens,
            "cached_prompt_tokens": c.cached_prompt_tokens,
            "generated_tokens": c.generated_tokens,
            "kv_bytes_transferred": c.kv_bytes,
        }

    # ---- routing -------------------------------------------------------------------------------
    def _pick(self, role: str, session_id: str | None) -> WorkerHandle | None:
        alive = [w for w in self.workers.values() if w.spec.role == role and w.alive]
        if not alive:
            return None
        sticky = self.sessions.get(session_id, {}).get(role) if session_id else None
        chosen = next((w for w in alive if w.name == sticky), None) or min(alive, key=lambda w: self._load(w.name))
        if session_id:
            self.sessions.setdefault(session_id, {})[role] = chosen.name
        return chosen

    def _load(self, name: str) -> int:
        """Requests a worker is busy with (a context worker until it has sent the KV)."""
        return sum(r.generation == name or (r.context == name and r.kv_in_flight) for r in self.requests.values())

    def _dispatch(self, req: RequestState) -> None:
        role = "colocated" if self.topology == "colocated" else "generation"
        worker = self._pick(role, req.session_id)
        if worker is None:
            self._fail(req, f"no {role} worker is alive")
            return
        req.generation = worker.name
        worker.inbox.put(m.Admit(req.request_id, req.token_ids, req.params, req.quantized_until, req.receive_until))

    # ---- worker messages -------------------------------------------------------------------------
    def _read_outbox(self) -> None:
        while not self._stopping.is_set():
            try:
                msg = self._outbox.get(timeout=0.2)
            except Exception:  # queue.Empty, or the queue closed at shutdown
                continue
            self.loop.call_soon_threadsafe(self._on_message, msg)

    def _on_message(self, msg) -> None:
        if isinstance(msg, m.Ready):
            self._on_ready(msg)
            return
        req = self.requests.get(msg.request_id)
        if isinstance(msg, m.KVSending):
            gen = self.workers.get(req.generation if req is not None else self.kv_owed.get(msg.request_id))
            if gen is not None and gen.alive:
                gen.inbox.put(m.ExpectKV(msg.request_id, self.workers[msg.worker].pool.rank))
            return
        if isinstance(msg, m.Cancelled):
            gen = self.workers.get(self.kv_owed.pop(msg.request_id, None))
            if gen is not None and gen.alive and not msg.kv_sent:
                gen.inbox.put(m.ReleaseReceiving(msg.request_id))
            return
        if req is None:
            return  # a late message for a request that already ended
        t = req.timings
        if isinstance(msg, m.Admitted):
            t.admitted = time.monotonic()
            req.cached_tokens = msg.cached_tokens
            if msg.first_block >= 0:
                ctx = self._pick("context", req.session_id)
                if ctx is None:
                    self._fail(req, "no context worker is alive")
                    return
                req.context, req.kv_in_flight = ctx.name, True
                ctx.inbox.put(m.Prefill(req.request_id, req.token_ids[:req.receive_until], req.generation,
                                        msg.first_block, msg.dst_blocks))
        elif isinstance(msg, m.Prefilled):
            t.prefill_started, t.prefill_ended = msg.started, msg.ended
            req.prefilled_tokens = msg.computed_tokens
            req.cached_tokens = max(req.cached_tokens, msg.cached_tokens)
            self.counters.quantized_prefill_tokens += msg.computed_tokens
        elif isinstance(msg, m.Sent):
            t.transfer_started, t.transfer_ended, t.kv_bytes = msg.started, msg.ended, msg.nbytes
            req.kv_in_flight = False
            self.counters.kv_bytes += msg.nbytes
            if not msg.ok:
                self._abandon(req)
                self._fail(req, f"the KV transfer from {msg.worker} to {req.generation} failed")
        elif isinstance(msg, m.Tokens):
            if t.first_token is None:
                t.first_token = msg.time
                self.counters.ttft.append(msg.time - t.submitted)
                self.counters.cached_prompt_tokens += req.cached_tokens
            req.output_ids += msg.token_ids
            self.counters.generated_tokens += len(msg.token_ids)
            if msg.finish_reason:
                t.finished = msg.time
                self._finish(req, Event(msg.token_ids, msg.finish_reason))
            else:
                req.events.put_nowait(Event(msg.token_ids))
        elif isinstance(msg, m.Failed):
            self._abandon(req)
            self._fail(req, f"{msg.worker}: {msg.message}")

    def _on_ready(self, msg: m.Ready) -> None:
        waiter = self._ready_waiters.get(msg.worker)
        if msg.error:
            if waiter and not waiter.done():
                waiter.set_exception(RuntimeError(f"worker {msg.worker} failed to start:\n{msg.error}"))
            return
        self.workers[msg.worker].pool = msg.pool
        if waiter and not waiter.done():
            waiter.set_result(True)

    # ---- endings ---------------------------------------------------------------------------------
    def _finish(self, req: RequestState, event: Event) -> None:
        if req.done:
            return
        req.done = True
        self.requests.pop(req.request_id, None)
        req.events.put_nowait(event)

    def _fail(self, req: RequestState, message: str) -> None:
        log.warning("request %s failed: %s", req.request_id, message)
        self._finish(req, Event([], "error", error=message))

    def _abandon(self, req: RequestState) -> None:
        """Tell the workers holding `req` to drop it."""
        for name in (req.generation, req.context if req.kv_in_flight else None):
            worker = self.workers.get(name)
            if worker is not None and worker.alive:
                worker.inbox.put(m.Cancel(req.request_id))
        if req.kv_in_flight:
            self.kv_owed[req.request_id] = req.generation

    # ---- supervision -----------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            for w in self.workers.values():
                if w.alive and not w.process.is_alive():
                    self._on_death(w)
            now = time.monotonic()
            for req in list(self.requests.values()):
                if req.deadline is not None and now > req.deadline:
                    self._abandon(req)
                    self._fail(req, f"timed out after {self.request_timeout:g} s")

    def _on_death(self, dead: WorkerHandle) -> None:
        dead.alive = False
        log.error("worker %s died (exit code %s)", dead.name, dead.process.exitcode)
        for req in list(self.requests.values()):
            if dead.name not in (req.generation, req.context if req.kv_in_flight else None):
                continue
            other = req.context if dead.name == req.generation else req.generation
            if other and (w := self.workers.get(other)) and w.alive:
                if w.spec.role == "context":
                    w.inbox.put(m.Cancel(req.request_id))
                else:
                    w.inbox.put(m.ReleaseReceiving(req.request_id))
            if not req.output_ids and req.retries < self.max_retries:
                req.retries += 1
                req.generation = req.context = None
                req.kv_in_flight = False
                log.warning("retrying %s after the death of %s", req.request_id, dead.name)
                self._dispatch(req)
            else:
                self._fail(req, f"worker {dead.name} died (exit code {dead.process.exitcode}) while serving it")
