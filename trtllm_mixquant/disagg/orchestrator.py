"""The orchestrator: the disaggregated `AsyncEngine`. It has workers launched, routes requests,
relays their tokens, and supervises: a dead worker's requests are retried or failed, and the worker
is replaced.

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

KV ownership across workers: while a context worker may be writing a request's KV into a generation
worker's reservation, the orchestrator remembers it owes those blocks (`kv_owed`, also after the
request ended) and tells the generation worker once it is known that no KV will come.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field, replace

from trtllm_mixquant.disagg import messages as m
from trtllm_mixquant.disagg.config import OrchestratorConfig, WorkerSpec
from trtllm_mixquant.disagg.launcher import WorkerProcess, make_launcher
from trtllm_mixquant.disagg.planning import plan_workers
from trtllm_mixquant.disagg.requests import RequestState
from trtllm_mixquant.engine.base import BlockUsage, in_prompt_order
from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.engine.phase import RequestRules
from trtllm_mixquant.errors import InvalidRequest, Overloaded, RequestFailed, ServingError, Unavailable
from trtllm_mixquant.frontend.async_engine import GenerateRequest, RequestStream, TokenEvent
from trtllm_mixquant.frontend.text import TextCodec
from trtllm_mixquant.transfer import TRANSPORTS, resolve_transport

log = logging.getLogger(__name__)
SUPERVISE_INTERVAL = 0.2  # seconds between liveness and deadline checks


@dataclass(eq=False)
class WorkerSlot:
    """One worker position: the current process in it, and how it is doing."""

    spec: WorkerSpec
    process: WorkerProcess
    peer: object = None  # PeerInfo once ready
    ready: bool = False
    alive: bool = True
    restarts: int = 0
    usage: BlockUsage | None = None

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
    restarts: int = 0
    ttft: list[float] = field(default_factory=list)


class Orchestrator:
    def __init__(self, config: OrchestratorConfig, launcher=None):
        self.config = config
        engine = config.engine
        self.dirs = resolve_engine_dirs(engine.engine_dir)
        colocated = config.topology == "colocated"
        self.rules = RequestRules.for_engines(self.dirs, engine.num_precise_prompt_tokens, engine.mode,
                                              quantized_loaded=not colocated or engine.mode != "bf16",
                                              quantized_decode=colocated)
        if not colocated:
            self.dirs.require_context("the disaggregated topology")
        self.codec = TextCodec.load(self.dirs.generation)
        self.precision = self.dirs.precision
        self.model_dir = self.dirs.generation
        self.transport = None if colocated else resolve_transport(config.kv_transport)
        self.launcher = launcher or make_launcher(config.launcher)
        self.slots: dict[str, WorkerSlot] = {}
        self.requests: dict[str, RequestState] = {}
        self.attempts: dict[str, RequestState] = {}  # wire id -> request
        self.parked: list[RequestState] = []  # waiting for a worker of a role to come back
        self.sessions: dict[str, dict[str, str]] = {}  # session id -> role -> worker name
        self.kv_owed: dict[str, tuple[str, str]] = {}  # ended attempt -> (generation, context) its KV may still move between
        self.checks: dict[str, asyncio.Future] = {}
        self.counters = Counters()
        self.ids = itertools.count()
        self.ready = False
        self._stopping = threading.Event()

    def worker_specs(self) -> list[WorkerSpec]:
        return plan_workers(self.config, self.transport)

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self, timeout: float = 600.0) -> None:
        self.loop = asyncio.get_running_loop()
        specs = self.worker_specs()
        self._started = {spec.name: self.loop.create_future() for spec in specs}
        for spec in specs:
            self.slots[spec.name] = WorkerSlot(spec, self.launcher.launch(spec))
        self._reader = threading.Thread(target=self._read, name="orchestrator-reader", daemon=True)
        self._reader.start()
        try:
            await asyncio.wait_for(asyncio.gather(*self._started.values()), timeout)
        except BaseException:
            await self.shutdown()
            raise
        for slot in self.slots.values():
            self._connect(slot)
        self._supervisor = asyncio.create_task(self._supervise())
        self.ready = True
        log.info("orchestrator ready: %s", ", ".join(
            f"{s.name}@{s.spec.engine.device}" + (f" (TP {s.spec.tp_size})" if s.spec.tp_size > 1 else "")
            for s in self.slots.values()))

    async def shutdown(self) -> None:
        """Stop the workers; requests still in flight end with an `Unavailable` error."""
        self.ready = False
        if getattr(self, "_supervisor", None):
            self._supervisor.cancel()
        for req in list(self.requests.values()):
            self._fail(req, Unavailable("the server is shutting down"))
        for slot in self.slots.values():
            if slot.process.alive():
                slot.process.send(m.Shutdown())
        for slot in self.slots.values():
            await asyncio.to_thread(slot.process.join, 10)
        self._stopping.set()

    # ---- AsyncEngine ---------------------------------------------------------------------------
    async def submit(self, request: GenerateRequest) -> RequestStream:
        if not self.ready:
            raise Unavailable("the server is starting; retry shortly", retry_after=5)
        admission = self.rules.admit(len(request.prompt_ids), request.params.max_tokens, request.mode)
        receive = admission.quantized_until if self.config.topology == "disaggregated" else 0
        for role in self._roles_needed(receive):
            if not self._live(role):
                raise Unavailable(f"no {role} worker is alive; a replacement is starting" if self._coming(role)
                                  else f"no {role} worker is alive", retry_after=5)
        if len(self.requests) >= self.config.max_pending:
            raise Overloaded(f"{len(self.requests)} requests are in flight (limit {self.config.max_pending}); "
                             "retry later")
        request_id = request.request_id or f"req-{next(self.ids)}"
        if request_id in self.requests:
            raise InvalidRequest(f"request id {request_id!r} is already in use")
        n = len(request.prompt_ids)
        timeout = self.config.request_timeout
        req = RequestState(request_id, list(request.prompt_ids), replace(request.params, max_tokens=admission.max_tokens),
                           request.session_id, admission.quantized_until, receive,
                           time.monotonic() + timeout if timeout else None, RequestStream(request_id, admission, n))
        req.stream.timings = req.timings
        self.requests[request_id] = req
        self.counters.requests += 1
        self.counters.prompt_tokens += n
        self._dispatch(req)
        return req.stream

    def abort(self, request_id: str) -> None:
        req = self.requests.get(request_id)
        if req is not None:
            self._abandon(req)
            self._finish(req, TokenEvent([], "cancelled"))

    def health(self) -> tuple[bool, dict]:
        if not self.ready:
            return False, {"status": "starting"}
        roles = sorted(set(self.config.roles))
        dead = [s.name for s in self.slots.values() if not (s.alive and s.ready)]
        missing = [r for r in roles if not self._live(r)]
        if missing:
            return False, {"status": "unhealthy", "error": f"no live {', '.join(missing)} worker", "down": dead}
        return True, {"status": "degraded", "down": dead} if dead else {"status": "ok"}

    def stats(self) -> dict:
        c = self.counters
        return {
            "topology": self.config.topology,
            "in_flight": len(self.requests),
            "requests_by_state": self._states(),
            "workers": {s.name: {"role": s.spec.role, "device": s.spec.engine.device, "alive": s.alive and s.ready,
                                 "load": self._load(s.name), "restarts": s.restarts, "usage": s.usage}
                        for s in self.slots.values()},
            "requests": c.requests,
            "prompt_tokens": c.prompt_tokens,
            "quantized_prefill_tokens": c.quantized_prefill_tokens,
            "cached_prompt_tokens": c.cached_prompt_tokens,
            "generated_tokens": c.generated_tokens,
            "kv_bytes_transferred": c.kv_bytes,
            "worker_restarts": c.restarts,
        }

    async def check_blocks(self) -> dict[str, str | None]:
        """Ask every live worker to check its block ownership: worker -> None (consistent) or what is wrong."""
        live = [s for s in self.slots.values() if s.alive and s.ready]
        self.checks = {s.spec.id: self.loop.create_future() for s in live}
        for s in live:
            s.process.send(m.CheckBlocks())
        results = await asyncio.wait_for(asyncio.gather(*self.checks.values()), 30)
        return {s.name: r for s, r in zip(live, results)}

    # ---- routing -------------------------------------------------------------------------------
    def _roles_needed(self, receive_until: int) -> list[str]:
        if self.config.topology == "colocated":
            return ["colocated"]
        return ["generation", "context"] if receive_until else ["generation"]

    def _live(self, role: str) -> list[WorkerSlot]:
        return [s for s in self.slots.values() if s.spec.role == role and s.alive and s.ready]

    def _coming(self, role: str) -> bool:
        """A worker of `role` is starting or will be replaced."""
        return any(s.spec.role == role and (s.alive or (self._replaceable() and s.restarts < self.config.max_restarts))
                   for s in self.slots.values())

    def _replaceable(self) -> bool:
        return self.transport is None or TRANSPORTS.resolve(self.transport).replaceable

    def _pick(self, role: str, session_id: str | None) -> WorkerSlot | None:
        alive = self._live(role)
        if not alive:
            return None
        sticky = self.sessions.get(session_id, {}).get(role) if session_id else None
        chosen = next((s for s in alive if s.name == sticky), None) or min(alive, key=lambda s: self._load(s.name))
        if session_id:
            self.sessions.setdefault(session_id, {})[role] = chosen.name
        return chosen

    def _load(self, name: str) -> int:
        """Requests a worker is busy with (a context worker until it has sent the KV)."""
        return sum(r.generation == name or (r.context == name and r.kv_in_flight) for r in self.requests.values())

    def _states(self) -> dict[str, int]:
        states = dict.fromkeys(("parked", "admitting", "prefilling", "decoding"), 0)
        for r in self.requests.values():
            state = ("parked" if r in self.parked else "prefilling" if r.kv_in_flight else
                     "decoding" if r.produced else "admitting")
            states[state] += 1
        return states

    def _dispatch(self, req: RequestState) -> None:
        role = "colocated" if self.config.topology == "colocated" else "generation"
        slot = self._pick(role, req.session_id)
        if slot is None:
            self._park(req, role)
            return
        req.generation = slot.name
        self.attempts[req.wire_id] = req
        slot.process.send(m.Admit(req.wire_id, req.token_ids, req.params, req.quantized_until, req.receive_until))

    def _park(self, req: RequestState, role: str) -> None:
        """No live worker of `role`: wait for its replacement, or fail if none will come."""
        req.generation = req.context = None
        if self._coming(role):
            self.parked.append(req)
        else:
            self._fail(req, Unavailable(f"no {role} worker is alive", retry_after=5))

    # ---- worker messages -------------------------------------------------------------------------
    def _read(self) -> None:
        while not self._stopping.is_set():
            msg = self.launcher.receive(0.2)
            if msg is not None:
                self.loop.call_soon_threadsafe(self._on_message, msg)

    def _sender(self, worker_id: str) -> WorkerSlot | None:
        name = worker_id.rpartition(".")[0]
        slot = self.slots.get(name)
        return slot if slot is not None and slot.spec.id == worker_id else None  # else: a dead incarnation's

    def _on_message(self, msg) -> None:
        slot = self._sender(msg.worker)
        if slot is None:
            return
        if isinstance(msg, m.Ready):
            self._on_ready(slot, msg)
        elif isinstance(msg, m.Usage):
            slot.usage = msg.usage
        elif isinstance(msg, m.BlocksChecked):
            future = self.checks.get(msg.worker)
            if future is not None and not future.done():
                future.set_result(msg.error)
        elif isinstance(msg, (m.Cancelled, m.Sent, m.Failed)) and msg.request_id in self.kv_owed:
            self._on_owed(msg)
        elif (req := self.attempts.get(msg.request_id)) is not None:
            self._on_request_message(req, slot, msg)

    def _on_owed(self, msg) -> None:
        """A context worker's answer about the KV of a request that has already ended."""
        gen, ctx = self.kv_owed[msg.request_id]
        if isinstance(msg, m.Failed) or (isinstance(msg, m.Cancelled) and not msg.kv_sent) or \
                (isinstance(msg, m.Sent) and not msg.ok):
            self._tell(gen, m.KVWontCome(msg.request_id))
        if not (isinstance(msg, m.Cancelled) and msg.kv_sent):
            del self.kv_owed[msg.request_id]  # settled (a successful transfer frees on landing)

    def _on_request_message(self, req: RequestState, slot: WorkerSlot, msg) -> None:
        t = req.timings
        if isinstance(msg, m.Admitted):
            req.cached_tokens = msg.cached_tokens
            if msg.first_block >= 0:
                ctx = self._pick("context", req.session_id)
                if ctx is None:
                    self._tell(req.generation, m.Cancel(req.wire_id))
                    self._retry_later(req, "context")
                    return
                req.context, req.kv_in_flight = ctx.name, True
                gen_peer = self.slots[req.generation].peer
                n = req.receive_until
                ctx.process.send(m.Prefill(req.wire_id, req.token_ids[:n], gen_peer.name, msg.first_block,
                                           msg.dst_blocks, req.params.prompt_logprobs,
                                           req.token_ids[n] if n < len(req.token_ids) else None))
        elif isinstance(msg, m.Prefilled):
            t.prefill = msg.seconds
            req.prefilled_tokens = msg.computed_tokens
            req.prompt_logprobs.update(msg.prompt_logprobs or {})
            req.cached_tokens = max(req.cached_tokens, msg.cached_tokens)
            self.counters.quantized_prefill_tokens += msg.computed_tokens
        elif isinstance(msg, m.Sent):
            t.transfer, t.kv_bytes = msg.seconds, msg.nbytes
            req.kv_in_flight = False
            self.counters.kv_bytes += msg.nbytes
            if not msg.ok:
                self._abandon(req)
                self._fail(req, RequestFailed(f"the KV transfer from {slot.name} to {req.generation} failed"))
            if req.done:  # the report came after the last token: the request is settled now
                self.attempts.pop(req.wire_id, None)
        elif isinstance(msg, m.Tokens):
            self._on_tokens(req, msg)
        elif isinstance(msg, m.Failed):
            self._abandon(req)
            self._fail(req, InvalidRequest(msg.message) if msg.invalid else RequestFailed(msg.message))

    def _on_tokens(self, req: RequestState, msg: m.Tokens) -> None:
        t = req.timings
        if t.first_token is None:
            t.first_token, t.first_step = time.monotonic(), msg.first_step_seconds
            self.counters.ttft.append(t.first_token - t.submitted)
            self.counters.cached_prompt_tokens += req.cached_tokens
            req.stream.num_cached_prompt = req.cached_tokens
        req.stream.num_generated += len(msg.token_ids)
        self.counters.generated_tokens += len(msg.token_ids)
        prompt_logprobs = None
        if msg.prompt_logprobs is not None:  # the first tokens: both workers' parts, in prompt order
            prompt_logprobs = in_prompt_order({**req.prompt_logprobs, **msg.prompt_logprobs})
        event = TokenEvent(msg.token_ids, msg.finish_reason, logprobs=msg.logprobs, prompt_logprobs=prompt_logprobs)
        if msg.finish_reason:
            self._finish(req, event)
        else:
            req.stream.events.put_nowait(event)

    def _on_ready(self, slot: WorkerSlot, msg: m.Ready) -> None:
        started = self._started.get(slot.name)
        if msg.error:
            if started is not None and not started.done():
                started.set_exception(RuntimeError(f"worker {slot.name} failed to start:\n{msg.error}"))
            else:
                log.error("replacement of %s failed to start:\n%s", slot.name, msg.error)
            return
        slot.peer, slot.usage, slot.ready = msg.peer, msg.usage, True
        if started is not None and not started.done():
            started.set_result(True)
        if self.ready:  # a replacement: introduce it, then serve what waited for it
            self._connect(slot, announce=True)
            log.warning("worker %s is back (restart %d)", slot.name, slot.restarts)
            parked, self.parked = self.parked, []
            for req in parked:
                self._dispatch(req)

    def _connect(self, slot: WorkerSlot, announce: bool = False) -> None:
        """Give `slot` the other role's peers (context workers write to generation workers, which get
        notified); announce: also give it to them."""
        if slot.peer is None:
            return
        others = [s for s in self.slots.values() if s.peer is not None and s.spec.role != slot.spec.role and s.alive]
        slot.process.send(m.Connect([s.peer for s in others]))
        if announce:
            for other in others:
                other.process.send(m.Connect([slot.peer]))

    def _tell(self, name: str | None, msg) -> None:
        slot = self.slots.get(name)
        if slot is not None and slot.alive:
            slot.process.send(msg)

    # ---- endings ---------------------------------------------------------------------------------
    def _finish(self, req: RequestState, event: TokenEvent) -> None:
        if req.done:
            return
        req.done = True
        self.requests.pop(req.request_id, None)
        if not req.kv_in_flight:  # else the context worker's report of the transfer is still to come
            self.attempts.pop(req.wire_id, None)
        if req in self.parked:
            self.parked.remove(req)
        req.stream.events.put_nowait(event)

    def _fail(self, req: RequestState, error: ServingError) -> None:
        log.warning("request %s failed: %s", req.request_id, error)
        self._finish(req, TokenEvent([], "error", error))

    def _abandon(self, req: RequestState) -> None:
        """Tell the workers holding `req` to drop it."""
        self._tell(req.generation, m.Cancel(req.wire_id, kv_may_arrive=req.kv_in_flight))
        if req.kv_in_flight:
            self._tell(req.context, m.Cancel(req.wire_id))
            self.kv_owed[req.wire_id] = (req.generation, req.context)
        req.kv_in_flight = False

    # ---- supervision -----------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL)
            for slot in list(self.slots.values()):
                if slot.alive and not slot.process.alive():
                    self._on_death(slot)
            now = time.monotonic()
            for req in list(self.requests.values()):
                if req.deadline is not None and now > req.deadline:
                    self._abandon(req)
                    self._fail(req, RequestFailed(f"timed out after {self.config.request_timeout:g} s"))

    def _on_death(self, dead: WorkerSlot) -> None:
        dead.alive = dead.ready = False
        log.error("worker %s died (exit code %s)", dead.name, dead.process.exitcode)
        for rid, (gen, ctx) in list(self.kv_owed.items()):
            if dead.name in (gen, ctx):
                del self.kv_owed[rid]
                if dead.name == ctx:
                    self._tell(gen, m.KVWontCome(rid))
        for wire_id, req in list(self.attempts.items()):
            if req.done and req.context == dead.name:
                del self.attempts[wire_id]  # its transfer report will never come
        for req in list(self.requests.values()):
            if dead.name not in (req.generation, req.context if req.kv_in_flight else None):
                continue
            if dead.name == req.context:
                self._tell(req.generation, m.Cancel(req.wire_id))  # no KV will come: free its reservation
            else:
                self._abandon(req)  # the context worker drops it; its answer settles nothing (gen is gone)
            if not req.produced and req.retries < self.config.max_retries:
                log.warning("retrying %s after the death of %s", req.request_id, dead.name)
                self._retry(req)
            else:
                self._fail(req, RequestFailed(f"worker {dead.name} died while serving this request"))
        self._schedule_restart(dead)

    def _retry(self, req: RequestState) -> None:
        """Start the request again as a new attempt (workers drop what they held of the old one)."""
        self.attempts.pop(req.wire_id, None)
        req.retries += 1
        req.generation = req.context = None
        req.kv_in_flight = False
        self._dispatch(req)

    def _retry_later(self, req: RequestState, role: str) -> None:
        self.attempts.pop(req.wire_id, None)
        req.retries += 1
        self._park(req, role)

    def _schedule_restart(self, slot: WorkerSlot) -> None:
        if not self._replaceable():
            log.error("the %s KV transport ties the workers into one fixed group: %s cannot be replaced alone; "
                      "restart the server to restore it", self.config.kv_transport, slot.name)
            return
        if slot.restarts >= self.config.max_restarts:
            log.error("%s died %d times; its slot stays empty", slot.name, slot.restarts + 1)
            return
        delay = min(0.5 * 2 ** slot.restarts, 8.0)
        log.warning("replacing %s in %.1f s", slot.name, delay)
        self.loop.call_later(delay, self._restart, slot)

    def _restart(self, slot: WorkerSlot) -> None:
        if not self.ready:
            return
        slot.restarts += 1
        self.counters.restarts += 1
        slot.spec = replace(slot.spec, incarnation=slot.spec.incarnation + 1)
        slot.process = self.launcher.launch(slot.spec)
        slot.alive, slot.ready, slot.peer = True, False, None
