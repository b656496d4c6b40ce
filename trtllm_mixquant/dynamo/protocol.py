"""Dynamo's request and response dicts, turned into ours and back, and the handoff a prefill worker
passes its decode worker. Plain data: importing this module imports neither torch nor Dynamo.

A request reaches a worker as the dict Dynamo's frontend made of the OpenAI request (tokenized, chat
template applied): `token_ids`, `stop_conditions` (`max_tokens`, `stop_token_ids`, `ignore_eos`,
`min_tokens`, ...), `sampling_options` (`temperature`, `top_p`, `top_k`, `seed`, `n`, penalties, ...),
`output_options`, `annotations` (the client's `nvext.annotations`), and on a decode worker
`prefill_result.disaggregated_params`: the `Handoff` its prefill worker returned. A worker yields
`{"token_ids": [new ids], "index": 0}` chunks, the last with `finish_reason` and `completion_usage`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtllm_mixquant.disagg.messages import KVSource
from trtllm_mixquant.dynamo.config import MODE_ANNOTATION
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.errors import InvalidRequest
from trtllm_mixquant.transfer.base import PeerInfo

# Options this engine does not implement, with the value that means "not asked for".
UNSUPPORTED = {("sampling_options", "n"): (None, 1), ("sampling_options", "best_of"): (None, 1),
               ("sampling_options", "min_p"): (None, 0, 0.0), ("sampling_options", "use_beam_search"): (None, False),
               ("sampling_options", "guided_decoding"): (None,), ("stop_conditions", "min_tokens"): (None, 0),
               ("output_options", "logprobs"): (None,), ("output_options", "prompt_logprobs"): (None,)}


def request_mode(request: dict[str, Any]) -> str | None:
    """The precision a request asks for with `nvext.annotations: ["mode:bf16"]` (None: the worker's default)."""
    modes = [a[len(MODE_ANNOTATION):] for a in request.get("annotations") or [] if a.startswith(MODE_ANNOTATION)]
    return modes[-1] if modes else None


def sampling_params(request: dict[str, Any], defaults: dict[str, Any]) -> SamplingParams:
    """defaults: the model's generation_config values for options the request leaves out. max_tokens
    None means all the room the maximum sequence length leaves."""
    for (group, name), neutral in UNSUPPORTED.items():
        value = (request.get(group) or {}).get(name)
        if value not in neutral:
            raise InvalidRequest(f"`{name}`={value!r} is not supported by this engine", param=name)
    stop, sampling = request.get("stop_conditions") or {}, request.get("sampling_options") or {}

    def pick(name: str, fallback: Any) -> Any:
        value = sampling.get(name)
        return value if value is not None else defaults.get(name, fallback)
    try:
        return SamplingParams(max_tokens=stop.get("max_tokens"), temperature=pick("temperature", 1.0),
                              top_p=pick("top_p", 1.0), top_k=max(pick("top_k", 0), 0), seed=sampling.get("seed"),
                              stop_token_ids=list(stop.get("stop_token_ids") or []),
                              ignore_eos=bool(stop.get("ignore_eos")),
                              presence_penalty=sampling.get("presence_penalty") or 0.0,
                              frequency_penalty=sampling.get("frequency_penalty") or 0.0,
                              repetition_penalty=pick("repetition_penalty", 1.0))
    except ValueError as e:
        raise InvalidRequest(str(e)) from None


@dataclass
class Handoff:
    """What a prefill (context) worker returns in `disaggregated_params` for the decode worker.

    quantized_until: the phase rule's cut (`engine.phase`); receive_until: prompt tokens whose KV the
    context worker computed (0: nothing to read, e.g. mode bf16); source: where that KV waits."""

    mode: str
    quantized_until: int
    receive_until: int = 0
    source: KVSource | None = None

    def to_params(self) -> dict[str, Any]:
        params = {"mode": self.mode, "quantized_until": self.quantized_until, "receive_until": self.receive_until}
        if self.source is not None:
            params["source"] = {"peer": self.source.peer.to_wire(), "blocks": self.source.blocks,
                                "hold_seconds": self.source.hold_seconds}
        return params

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> Handoff | None:
        params = (request.get("prefill_result") or {}).get("disaggregated_params")
        if not params:
            return None
        try:
            source = params.get("source")
            if source is not None:
                source = KVSource(PeerInfo.from_wire(source["peer"]), [int(b) for b in source["blocks"]],
                                  float(source["hold_seconds"]))
            return cls(str(params["mode"]), int(params["quantized_until"]), int(params["receive_until"]), source)
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidRequest(f"the prefill result is not one a mixquant context worker writes ({e!r}); "
                                 "serve a model's prefill and decode pools with the same engine pair") from None


def usage(num_prompt: int, num_generated: int, num_cached: int) -> dict[str, Any]:
    return {"prompt_tokens": num_prompt, "completion_tokens": num_generated, "total_tokens": num_prompt + num_generated,
            "prompt_tokens_details": {"cached_tokens": num_cached}}
