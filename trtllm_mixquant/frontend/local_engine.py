"""`LocalEngine`: the in-process `AsyncEngine`. Both engines' weights in one model and one KV pool
(colocated), stepped by a background thread; the event loop only hands requests over and streams
tokens back, so it stays free while a step runs. For Triton Python models, notebooks and tests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from dataclasses import replace

from trtllm_mixquant.engine import create_backend
from trtllm_mixquant.engine.base import EngineRequest, RequestUpdate, in_prompt_order
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs
from trtllm_mixquant.engine.phase import RequestRules
from trtllm_mixquant.errors import InvalidRequest, Overloaded, RequestFailed, ServingError, Unavailable
from trtllm_mixquant.frontend.async_engine import GenerateRequest, RequestStream, TokenEvent
from trtllm_mixquant.frontend.text import TextCodec

log = logging.getLogger(__name__)


class LocalEngine:
    def __init__(self, config: EngineConfig, max_pending: int = 256):
        self.config, self.max_pending = config, max_pending
        self.dirs = resolve_engine_dirs(config.engine_dir)
        self.rules = RequestRules.for_engines(self.dirs, config.num_precise_prompt_tokens, config.mode,
                                              quantized_loaded=config.mode != "bf16", quantized_decode=True)
        self.codec = TextCodec.load(self.dirs.generation)
        self.precision = self.dirs.precision
        self.model_dir = self.dirs.generation
        self.streams: dict[str, RequestStream] = {}
        self.commands: queue.SimpleQueue = queue.SimpleQueue()  # ("add", EngineRequest) / ("abort", id) / None
        self.ids = itertools.count()
        self.counters = dict.fromkeys(("requests", "prompt_tokens", "quantized_prefill_tokens", "cached_prompt_tokens",
                                       "generated_tokens", "kv_bytes_transferred", "worker_restarts"), 0)
        self.ready = False
        self.backend = self.thread = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.backend = await asyncio.to_thread(create_backend, self.config, "colocated", self.dirs)
        self.thread = threading.Thread(target=self._run, name="local-engine", daemon=True)
        self.thread.start()
        self.ready = True

    async def shutdown(self) -> None:
        self.ready = False
        if self.thread is not None:
            self.commands.put(None)
            await asyncio.to_thread(self.thread.join, 30)
            self.backend.close()
        for request_id in list(self.streams):
            self._end(request_id, TokenEvent([], "error", Unavailable("the engine is shutting down")))

    async def submit(self, request: GenerateRequest) -> RequestStream:
        if not self.ready:
            raise Unavailable("the engine is not started")
        if len(self.streams) >= self.max_pending:
            raise Overloaded(f"{len(self.streams)} requests are in flight (limit {self.max_pending}); retry later")
        admission = self.rules.admit(len(request.prompt_ids), request.params.max_tokens, request.mode)
        request_id = request.request_id or f"req-{next(self.ids)}"
        if request_id in self.streams:
            raise InvalidRequest(f"request id {request_id!r} is already in use")
        stream = RequestStream(request_id, admission, len(request.prompt_ids))
        self.streams[request_id] = stream
        self.counters["requests"] += 1
        self.counters["prompt_tokens"] += len(request.prompt_ids)
        params = replace(request.params, max_tokens=admission.max_tokens)
        self.commands.put(("add", EngineRequest(request_id, list(request.prompt_ids), params,
                                                admission.quantized_until)))
        return stream

    def abort(self, request_id: str) -> None:
        if request_id in self.streams:
            self.commands.put(("abort", request_id))
            self._end(request_id, TokenEvent([], "cancelled"))

    def health(self) -> tuple[bool, dict]:
        alive = self.ready and self.thread.is_alive()
        return alive, {"status": "ok" if alive else "starting" if not self.ready else "failed"}

    def stats(self) -> dict:
        """The orchestrator's keys (`Orchestrator.stats`), for one in-process worker named "local"."""
        usage = self.backend.block_usage() if self.backend is not None else None
        return {"topology": "local", "in_flight": len(self.streams), "requests_by_state": {"running": len(self.streams)},
                "workers": {"local": {"role": "colocated", "device": self.config.device, "alive": self.ready,
                                      "load": len(self.streams), "restarts": 0, "usage": usage}},
                **self.counters}

    # ---- the stepping thread ---------------------------------------------------------------------
    def _run(self) -> None:
        running: set[str] = set()  # requests in the backend
        while True:
            try:
                command = self.commands.get() if not running else self.commands.get_nowait()
                while command is not None:
                    self._command(command, running)
                    command = self.commands.get_nowait()
                return  # None: shut down
            except queue.Empty:
                pass
            if running:
                self._step(running)

    def _command(self, command: tuple[str, object], running: set[str]) -> None:
        kind, arg = command
        if kind == "abort":
            self.backend.abort(arg)
            running.discard(arg)
            return
        try:
            self.backend.add(arg)
            running.add(arg.request_id)
        except Exception as e:  # a request the backend refuses fails alone
            log.exception("the engine refused request %s", arg.request_id)
            error = e if isinstance(e, ServingError) else RequestFailed("the engine could not process this request")
            self.loop.call_soon_threadsafe(self._end, arg.request_id, TokenEvent([], "error", error))

    def _step(self, running: set[str]) -> None:
        try:
            updates = self.backend.step()
        except Exception:  # which request broke it is unknown: fail those in the step, keep serving
            log.exception("engine step failed")
            failed = list(running)
            for request_id in failed:
                self.backend.abort(request_id)
            running.clear()
            error = RequestFailed("the engine failed while computing this request")
            for request_id in failed:
                self.loop.call_soon_threadsafe(self._end, request_id, TokenEvent([], "error", error))
            return
        running.difference_update(u.request_id for u in updates if u.finish_reason)
        if updates:
            self.loop.call_soon_threadsafe(self._deliver, updates)

    # ---- on the event loop -----------------------------------------------------------------------
    def _deliver(self, updates: list[RequestUpdate]) -> None:
        for update in updates:
            stream = self.streams.get(update.request_id)
            if stream is None:
                continue  # aborted meanwhile
            if update.token_ids and stream.num_generated == 0:  # the prompt is done
                self.counters["cached_prompt_tokens"] += update.num_cached_prompt
                cut = min(stream.admission.quantized_until, stream.num_prompt_tokens)
                self.counters["quantized_prefill_tokens"] += max(cut - update.num_cached_prompt, 0)
            stream.num_cached_prompt = update.num_cached_prompt
            stream.num_generated += len(update.token_ids)
            prompt_logprobs = None if update.prompt_logprobs is None else in_prompt_order(update.prompt_logprobs)
            self.counters["generated_tokens"] += len(update.token_ids)
            if update.finish_reason:
                self._end(update.request_id, TokenEvent(update.token_ids, update.finish_reason,
                                                        logprobs=update.logprobs, prompt_logprobs=prompt_logprobs))
            else:
                stream.events.put_nowait(TokenEvent(update.token_ids, logprobs=update.logprobs,
                                                    prompt_logprobs=prompt_logprobs))

    def _end(self, request_id: str, event: TokenEvent) -> None:
        stream = self.streams.pop(request_id, None)
        if stream is not None:
            stream.events.put_nowait(event)

