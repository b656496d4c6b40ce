"""The Triton Python-backend model: an `AsyncEngine` (in-process `LocalEngine`, or the disaggregated
`Orchestrator` over the devices the instance can see) behind TensorRT-LLM's BLS tensor names.

Decoupled (model `mixquant`): `generate`, `generate_stream` and gRPC streaming; one response per
text piece when `stream` is set, else one. Not decoupled (`mixquant_infer`): KServe `infer`, one
response per request. A request Triton cancels (the client went away) is aborted and its KV freed.
Custom metrics: time to first token, generated tokens, prompt tokens by precision, KV bytes moved,
KV blocks by worker and kind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from trtllm_mixquant.disagg.config import OrchestratorConfig
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.errors import InvalidRequest, Overloaded, ServingError, Unavailable
from trtllm_mixquant.frontend.async_engine import GenerateRequest
from trtllm_mixquant.frontend.generation import TextGeneration
from trtllm_mixquant.frontend.loop_thread import LoopThread
from trtllm_mixquant.triton.tensors import TritonRequest, parse

log = logging.getLogger(__name__)
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
TEXT_FIELDS = ("mode", "device", "dtype")  # EngineConfig fields a model parameter may set
INT_FIELDS = ("num_precise_prompt_tokens", "kv_cache_blocks", "max_num_seqs", "max_step_tokens")


def make_engine(engine_dir: Path, params: dict[str, str]):
    """The engine the model's parameters ask for (`topology`: colocated or disaggregated)."""
    options = {k: (int(v) if k in INT_FIELDS else v) for k, v in params.items()
               if k in TEXT_FIELDS + INT_FIELDS and v != ""}
    engine = EngineConfig(engine_dir, **options)
    if params.get("enforce_eager", "false") == "true":
        engine = engine.eager()
    if params.get("topology", "colocated") == "colocated":
        from trtllm_mixquant.frontend.local_engine import LocalEngine

        return LocalEngine(engine)
    from trtllm_mixquant.disagg.orchestrator import Orchestrator

    return Orchestrator(OrchestratorConfig(engine, context_workers=int(params.get("context_workers", 1)),
                                           generation_workers=int(params.get("generation_workers", 1))))


def triton_error(e: Exception) -> pb_utils.TritonError:
    """Domain errors keep their message; anything else is logged and reported plainly."""
    codes = pb_utils.TritonError
    if not isinstance(e, ServingError):
        return pb_utils.TritonError("the model could not process this request; the server log has the details",
                                    codes.INTERNAL)
    code = (codes.INVALID_ARG if isinstance(e, InvalidRequest) else
            codes.UNAVAILABLE if isinstance(e, (Overloaded, Unavailable)) else codes.INTERNAL)
    return pb_utils.TritonError(e.message, code)


def response(text: str, prompt_tokens: int | None = None, output_tokens: int | None = None,
             finish_reason: str | None = None) -> pb_utils.InferenceResponse:
    tensors = [pb_utils.Tensor("text_output", np.array([[text.encode("utf-8")]], dtype=object))]
    if finish_reason is not None:
        tensors += [pb_utils.Tensor("num_input_tokens", np.array([[prompt_tokens]], dtype=np.int32)),
                    pb_utils.Tensor("num_output_tokens", np.array([[output_tokens]], dtype=np.int32)),
                    pb_utils.Tensor("finish_reason", np.array([[finish_reason.encode()]], dtype=object))]
    return pb_utils.InferenceResponse(output_tensors=tensors)


class Metrics:
    """Triton custom metrics (they appear on the server's metrics port beside its own). Each family
    object must outlive its metrics, so the families are kept here."""

    def __init__(self, model: str):
        family, self.labels = pb_utils.MetricFamily, {"model": model}
        self.families = {
            "ttft": family("mixquant_time_to_first_token_seconds", "From arrival to the first token.", family.HISTOGRAM),
            "generated": family("mixquant_generation_tokens_total", "Generated tokens.", family.COUNTER),
            "prompt": family("mixquant_prompt_tokens_total", "Prompt tokens by the precision that prefills them.",
                             family.COUNTER),
            "kv_bytes": family("mixquant_kv_transfer_bytes", "KV-cache bytes moved between workers so far.",
                               family.GAUGE),
            "blocks": family("mixquant_kv_blocks", "KV-cache blocks by worker and kind.", family.GAUGE),
        }
        self.ttft = self.families["ttft"].Metric(labels=self.labels, buckets=TTFT_BUCKETS)
        self.generated = self.families["generated"].Metric(labels=self.labels)
        self.kv_bytes = self.families["kv_bytes"].Metric(labels=self.labels)
        self.by_label: dict[tuple, object] = {}

    def _metric(self, name: str, **labels: str):
        key = (name, *labels.items())
        if key not in self.by_label:
            self.by_label[key] = self.families[name].Metric(labels={**self.labels, **labels})
        return self.by_label[key]

    def prompt_tokens(self, precision: str, count: int) -> None:
        self._metric("prompt", precision=precision).increment(count)

    def engine_state(self, stats: dict) -> None:
        self.kv_bytes.set(stats["kv_bytes_transferred"])
        for worker, state in stats["workers"].items():
            if state["usage"] is not None:
                for kind in ("free", "used", "reserved"):
                    self._metric("blocks", worker=worker, kind=kind).set(getattr(state["usage"], kind))


class Listener:
    def __init__(self, metrics: Metrics, arrived: float):
        self.metrics, self.arrived = metrics, arrived

    def on_tokens(self, count: int, first: bool, now: float) -> None:
        if first:
            self.metrics.ttft.observe(now - self.arrived)
        self.metrics.generated.increment(count)

    def on_end(self, status: str, now: float) -> None:
        pass


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.name = config["name"]
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)
        engine_dir = Path(params["engine_dir"])
        if not engine_dir.is_absolute():  # relative to the model repository
            engine_dir = (Path(args["model_repository"]).parent / engine_dir).resolve()
        self.engine = make_engine(engine_dir, params)
        self.loop = LoopThread()
        self.loop.run(self.engine.start())
        self.metrics = Metrics(self.name)
        self.loop.submit(self._report_engine_state())
        log.warning("%s ready: %s engines from %s", self.name, self.engine.precision, engine_dir)

    def execute(self, requests):
        if self.decoupled:
            for request in requests:
                self.loop.submit(self._serve(request, request.get_response_sender()))
            return None
        futures = [self.loop.submit(self._whole(request)) for request in requests]
        return [f.result() for f in futures]

    def finalize(self) -> None:
        self.loop.run(self.engine.shutdown())

    # ---- one request ---------------------------------------------------------------------------
    async def _start(self, request) -> tuple[TritonRequest, TextGeneration]:
        arrived = time.monotonic()
        req = parse({t.name(): t.as_numpy() for t in request.inputs()})
        codec = self.engine.codec
        codec.check_size(len(req.text), self.engine.rules.max_seq_len, "text_input")
        ids = await asyncio.to_thread(codec.encode, req.text, "text_input")
        gen = await TextGeneration.start(self.engine, GenerateRequest(ids, req.params, req.mode),
                                         Listener(self.metrics, arrived))
        quantized = min(gen.stream.admission.quantized_until, len(ids))
        self.metrics.prompt_tokens(self.engine.precision, quantized)
        self.metrics.prompt_tokens("bf16", len(ids) - quantized)
        return req, gen

    async def _serve(self, request, sender) -> None:
        """Decoupled: stream the pieces (or send the whole text) and end with a final response."""
        try:
            req, gen = await self._start(request)
        except Exception as e:
            if not isinstance(e, ServingError):
                log.exception("request failed")
            sender.send(pb_utils.InferenceResponse(error=triton_error(e)), flags=FINAL)
            return
        watcher = asyncio.ensure_future(self._watch_cancel(request, gen))
        text = req.text if not (req.stream or req.exclude_input) else ""
        try:
            async for piece in gen.pieces():
                if req.stream and piece.text and not piece.finish_reason:
                    sender.send(response(piece.text))
                else:
                    text += piece.text
            if gen.finish_reason == "cancelled":
                error = pb_utils.TritonError("the request was cancelled", pb_utils.TritonError.CANCELLED)
                sender.send(pb_utils.InferenceResponse(error=error), flags=FINAL)
            else:
                sender.send(response(text, gen.prompt_tokens, gen.completion_tokens, gen.finish_reason), flags=FINAL)
        except Exception as e:  # whatever happens, the request gets its final response
            if not isinstance(e, ServingError):
                log.exception("request failed")
            sender.send(pb_utils.InferenceResponse(error=triton_error(e)), flags=FINAL)
        finally:
            watcher.cancel()
            gen.close()

    async def _whole(self, request) -> pb_utils.InferenceResponse:
        """Not decoupled: one response with the whole text."""
        try:
            req, gen = await self._start(request)
            text = await gen.text()
        except Exception as e:
            if not isinstance(e, ServingError):
                log.exception("request failed")
            return pb_utils.InferenceResponse(error=triton_error(e))
        prefix = "" if req.exclude_input else req.text
        return response(prefix + text, gen.prompt_tokens, gen.completion_tokens, gen.finish_reason)

    async def _watch_cancel(self, request, gen: TextGeneration) -> None:
        while not gen.closed:
            if request.is_cancelled():
                gen.close("cancelled")
                return
            await asyncio.sleep(0.05)

    async def _report_engine_state(self) -> None:
        while True:
            self.metrics.engine_state(self.engine.stats())
            await asyncio.sleep(0.5)
