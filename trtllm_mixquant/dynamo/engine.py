"""`MixQuantEngine`: one of our workers as the engine of a Dynamo worker process.

Dynamo's `Worker` (Rust) registers the model, serves the endpoint, watches for cancellations, and
on SIGTERM unregisters, drains and calls `cleanup`. It calls `generate` concurrently from its event
loop; each call hands the request to our disaggregated `Worker` (the same class the one-host
orchestrator runs), which steps the engine in a thread and answers through a `ThreadChannel`.

Context role (a Dynamo prefill worker): prefill the quantized part of the prompt, hold its KV
blocks, and return where they are (`protocol.Handoff`) in `disaggregated_params`; no token is
generated here (Dynamo's frontend then sends the request on to a decode worker). A request in mode
bf16 (or whose prompt is all precise tokens) is answered at once with nothing to read.

Generation role (a decode worker): reserve blocks, read the held KV over NIXL (from host or GPU
memory, across hosts), finish the prompt and decode in BF16, streaming every output token.

The context worker publishes its prefix cache's blocks as KV events, so Dynamo's KV-aware router
sends an agent's next turn to the context worker that holds its earlier turns. Only blocks whose
every token was quantized are published (all a context worker computes): the router matches blocks
by their tokens alone, so a block computed in another phase must never be advertised.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from typing import Any

from dynamo.common.backend import EngineConfig, LLMEngine, WorkerConfig
from dynamo.common.backend.engine import LlmRegistration
from dynamo.common.backend.metrics import register_engine_registry
from dynamo.common.backend.publisher import ComponentSnapshot, PushSource
from dynamo.common.constants import DisaggregationMode
from dynamo.llm.exceptions import EngineShutdown, InvalidArgument, Unknown

from trtllm_mixquant.disagg import messages as m
from trtllm_mixquant.disagg.channel import ThreadChannel
from trtllm_mixquant.disagg.config import WorkerSpec
from trtllm_mixquant.disagg.worker import Worker
from trtllm_mixquant.dynamo.config import DynamoWorkerConfig
from trtllm_mixquant.dynamo.metrics import WorkerMetrics
from trtllm_mixquant.dynamo.protocol import Handoff, request_mode, sampling_params, usage
from trtllm_mixquant.engine.base import KVEvent
from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.engine.phase import RequestRules
from trtllm_mixquant.engine.sampling import sampling_defaults
from trtllm_mixquant.errors import InvalidRequest, RequestFailed, ServingError
from trtllm_mixquant.transfer import TRANSPORTS
from trtllm_mixquant.transfer.base import kv_bytes

log = logging.getLogger(__name__)


class MixQuantEngine(LLMEngine):
    def __init__(self, config: DynamoWorkerConfig):
        self.config, self.role = config, config.role
        self.dirs = resolve_engine_dirs(config.engine.engine_dir)
        self.defaults = sampling_defaults(self.dirs.generation)
        k = config.engine.num_precise_prompt_tokens
        if self.role == "context":
            self.rules = RequestRules.for_engines(self.dirs, k, config.engine.mode, quantized_loaded=True,
                                                  quantized_decode=False)
        else:  # the precision was settled by the context worker; only lengths are checked here
            self.rules = RequestRules(self.dirs.max_seq_len, k, "bf16")
        self.metrics = WorkerMetrics()
        self.streams: dict[str, asyncio.Queue] = {}  # request id -> the worker's messages about it
        self.worker = self.channel = self.thread = self.peer = None
        self.kv_publisher = self.snapshots = None
        self.warned_without_prefill = False

    @classmethod
    async def from_args(cls, argv: list[str] | None = None) -> tuple[MixQuantEngine, WorkerConfig]:
        from trtllm_mixquant.dynamo.cli import parse_worker_args

        engine = cls(parse_worker_args(argv))
        return engine, engine.worker_config()

    def worker_config(self) -> WorkerConfig:
        c = self.config
        mode = DisaggregationMode.PREFILL if self.role == "context" else DisaggregationMode.DECODE
        return WorkerConfig(namespace=c.namespace, component=c.component, endpoint="generate",
                            model_name=str(self.dirs.generation), served_model_name=c.model_name,
                            discovery_backend=c.discovery_backend, request_plane=c.request_plane,
                            event_plane=c.event_plane, tool_call_parser=c.tool_call_parser,
                            reasoning_parser=c.reasoning_parser, disaggregation_mode=mode)

    # ---- lifecycle ------------------------------------------------------------------------------
    async def start(self, worker_id: int) -> EngineConfig:
        if not TRANSPORTS.resolve("nixl").available():
            raise RuntimeError("Dynamo workers move KV with NIXL, which is not installed: "
                               "pip install 'trtllm-mixquant[nixl,dynamo]'")
        if self.config.engine.tensor_parallel_size > 1:
            raise ValueError("a Dynamo worker runs on one rank: its decode worker pulls KV, which tensor-parallel "
                             "workers do not offer yet; serve tensor-parallel workers with `trtllm-mixquant serve`")
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self.channel = ThreadChannel(loop, self._deliver)
        spec = WorkerSpec(self.role, f"{self.role}-{worker_id:x}", self.config.engine, TRANSPORTS.target("nixl"),
                          hold_seconds=self.config.hold_seconds, kv_events=self.role == "context")
        self.worker = await asyncio.to_thread(Worker, spec, self.channel)
        self.thread = threading.Thread(target=self.worker.serve, name=f"{self.role}-worker", daemon=True)
        self.thread.start()
        ready = await self.ready
        self.peer = ready.peer
        self.metrics.set_usage(ready.usage)
        e = self.config.engine
        log.info("%s worker %s ready: %s, %d KV blocks", self.role, spec.name, self.dirs.generation.parent,
                 ready.usage.total)
        return EngineConfig(model=str(self.dirs.generation), served_model_name=self.config.model_name,
                            llm=LlmRegistration(context_length=self.dirs.max_seq_len,
                                                kv_cache_block_size=self.peer.layout.block_size,
                                                total_kv_blocks=ready.usage.total, max_num_seqs=e.max_num_seqs,
                                                max_num_batched_tokens=e.max_step_tokens))

    async def is_quiescent(self) -> bool | None:
        """Prefill drain: done once no prefill runs and no prefilled KV waits for its reader."""
        return self.worker is not None and not self.worker.prefills and not self.worker.holding

    async def cleanup(self) -> None:
        if self.thread is not None:
            self.channel.put(m.Shutdown())
            await asyncio.to_thread(self.thread.join, 30)
            self.thread = None
        for queue in self.streams.values():
            queue.put_nowait(None)  # the worker has stopped

    # ---- requests -------------------------------------------------------------------------------
    async def generate(self, request: dict[str, Any], context):
        request_id = context.id()
        queue: asyncio.Queue = asyncio.Queue()
        self.streams[request_id] = queue
        ended = False
        try:
            steps = self._prefill(request_id, request, queue) if self.role == "context" else \
                self._decode(request_id, request, queue)
            async for chunk in steps:
                ended = "finish_reason" in chunk
                yield chunk
        except ServingError as e:
            ended = True
            invalid = isinstance(e, InvalidRequest)
            self.metrics.requests.labels("invalid" if invalid else "error").inc()
            raise (InvalidArgument if invalid else Unknown)(e.message) from None
        finally:
            self.streams.pop(request_id, None)
            if not ended:  # cancelled, or the client went away
                self.metrics.requests.labels("cancelled").inc()
                self.channel.put(m.Cancel(request_id))

    async def abort(self, context) -> None:
        if context.id() in self.streams:
            self.channel.put(m.Cancel(context.id()))

    async def _next(self, queue: asyncio.Queue):
        msg = await queue.get()
        if msg is None:
            raise EngineShutdown("the worker is shutting down")
        if isinstance(msg, m.Failed):
            raise (InvalidRequest if msg.invalid else RequestFailed)(msg.message)
        return msg

    async def _prefill(self, request_id: str, request: dict[str, Any], queue: asyncio.Queue):
        tokens = list(request["token_ids"])
        admission = self.rules.admit(len(tokens), 1, request_mode(request))
        sampling_params(request, self.defaults)  # refuse options the decode worker would refuse before prefilling
        cut = min(admission.quantized_until, len(tokens))
        self.metrics.prompt_tokens.inc(len(tokens))
        handoff = Handoff(admission.mode, admission.quantized_until)
        cached = 0
        if cut > 0:
            self.channel.put(m.Prefill(request_id, tokens[:cut]))
            done = await self._next(queue)
            cached = done.cached_tokens
            self.metrics.cached_prompt_tokens.inc(done.cached_tokens)
            self.metrics.computed_prompt_tokens.inc(done.computed_tokens)
            handoff.receive_until = cut
            handoff.source = m.KVSource(self.peer, done.blocks, self.config.hold_seconds)
        self.metrics.requests.labels("prefilled").inc()
        yield {"token_ids": [], "index": 0, "finish_reason": "length", "disaggregated_params": handoff.to_params(),
               "completion_usage": usage(len(tokens), 0, cached)}

    async def _decode(self, request_id: str, request: dict[str, Any], queue: asyncio.Queue):
        tokens = list(request["token_ids"])
        handoff = Handoff.from_request(request)
        if handoff is None and not self.warned_without_prefill:
            log.warning("requests arrive without a prefill result (no context worker registered?): they run in BF16")
            self.warned_without_prefill = True
        source = handoff.source if handoff is not None else None
        mode = handoff.mode if handoff is not None else "bf16"
        try:
            params = sampling_params(request, self.defaults)
            admission = self.rules.admit(len(tokens), params.max_tokens, "bf16")
        except InvalidRequest:
            if source is not None:  # its context worker can free the KV now rather than after hold_seconds
                self.channel.put(m.Release(request_id, source))
            raise
        params = replace(params, max_tokens=admission.max_tokens)
        self.channel.put(m.Admit(request_id, tokens, params, handoff.quantized_until if handoff else 0,
                                 handoff.receive_until if source else 0, source))
        self.metrics.prompt_tokens.inc(len(tokens))
        generated: list[int] = []
        while True:
            msg = await self._next(queue)
            if isinstance(msg, m.Admitted):
                self.metrics.cached_prompt_tokens.inc(msg.cached_tokens)
                self.metrics.kv_bytes_read.inc(kv_bytes(self.worker.backend.kv_cache, len(msg.dst_blocks)))
                received = max(handoff.receive_until if source else 0, msg.cached_tokens)
                self.metrics.computed_prompt_tokens.inc(len(tokens) - received)
                continue
            generated += msg.token_ids
            self.metrics.generated_tokens.inc(len(msg.token_ids))
            chunk = {"token_ids": msg.token_ids, "index": 0}
            if msg.finish_reason:
                self.metrics.requests.labels(msg.finish_reason).inc()
                yield {**chunk, "finish_reason": msg.finish_reason, "engine_data": {"token_ids": generated, "mode": mode},
                       "completion_usage": usage(len(tokens), len(generated), msg.cached_tokens)}
                return
            yield chunk

    # ---- what the worker thread reports ---------------------------------------------------------
    def _deliver(self, msg) -> None:
        if isinstance(msg, m.Ready):
            if msg.error:
                self.ready.set_exception(RuntimeError(f"the {self.role} worker could not start:\n{msg.error}"))
            else:
                self.ready.set_result(msg)
        elif isinstance(msg, m.Usage):
            self._publish_usage(msg)
        elif isinstance(msg, m.KVEvents):
            self._publish_kv_events(msg.events)
        elif getattr(msg, "request_id", None) in self.streams:
            self.streams[msg.request_id].put_nowait(msg)

    def _publish_usage(self, msg: m.Usage) -> None:
        self.metrics.set_usage(msg.usage)
        if self.snapshots is not None:
            busy = msg.usage.used + msg.usage.reserved
            self.snapshots.publish(0, ComponentSnapshot(kv_used_blocks=busy, kv_total_blocks=msg.usage.total,
                                                        gpu_cache_usage=busy / max(msg.usage.total, 1), dp_rank=0))

    def _publish_kv_events(self, events: list[KVEvent]) -> None:
        if self.kv_publisher is None:
            return
        block_size = self.peer.layout.block_size
        for e in events:
            if e.kind == "removed":
                self.kv_publisher.publish_removed([e.block_hash])
            elif e.quantized_tokens == block_size:
                self.kv_publisher.publish_stored(list(e.token_ids), [block_size], [e.block_hash], e.parent_hash)

    # ---- Dynamo's hooks for routing and metrics -------------------------------------------------
    async def kv_event_sources(self):
        return [PushSource(on_ready=self._kv_publisher_ready, dp_rank=0)] if self.role == "context" else []

    def _kv_publisher_ready(self, publisher) -> None:
        self.kv_publisher = publisher

    def component_metrics_dp_ranks(self) -> list[int]:
        return [0]

    def attach_snapshot_publisher(self, publisher) -> None:
        self.snapshots = publisher

    async def register_prometheus(self, metrics) -> None:
        register_engine_registry(metrics, self.metrics.registry, prefix_filters=["mixquant_"])
