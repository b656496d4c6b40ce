"""The Triton model's tensors: the inputs and outputs of TensorRT-LLM's `tensorrt_llm_bls` model
(so existing Triton clients, curl scripts and genai-perf work unchanged) plus our own extras, and
their translation to and from a `GenerateRequest`.

Source of the names and types: `triton_backend/all_models/inflight_batcher_llm/tensorrt_llm_bls/
config.pbtxt` in github:NVIDIA/TensorRT-LLM (2025). Inputs we accept but cannot honour are refused
unless they hold their neutral value, as the HTTP server does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.errors import InvalidRequest

# name -> (Triton type, dims, optional); dims exclude the batch dimension (max_batch_size > 0)
INPUTS = {
    "text_input": ("TYPE_STRING", [1], False),
    "max_tokens": ("TYPE_INT32", [1], False),
    "stream": ("TYPE_BOOL", [1], True),
    "temperature": ("TYPE_FP32", [1], True),
    "top_k": ("TYPE_INT32", [1], True),
    "top_p": ("TYPE_FP32", [1], True),
    "seed": ("TYPE_UINT64", [1], True),
    "stop_words": ("TYPE_STRING", [-1], True),
    "bad_words": ("TYPE_STRING", [-1], True),
    "end_id": ("TYPE_INT32", [1], True),
    "pad_id": ("TYPE_INT32", [1], True),
    "exclude_input_in_output": ("TYPE_BOOL", [1], True),
    "repetition_penalty": ("TYPE_FP32", [1], True),
    "presence_penalty": ("TYPE_FP32", [1], True),
    "frequency_penalty": ("TYPE_FP32", [1], True),
    "beam_width": ("TYPE_INT32", [1], True),
    "num_return_sequences": ("TYPE_INT32", [1], True),
    "return_num_input_tokens": ("TYPE_BOOL", [1], True),
    "return_num_output_tokens": ("TYPE_BOOL", [1], True),
    # ours
    "mixquant_mode": ("TYPE_STRING", [1], True),  # mixquant, bf16 or quantized (default: the model's)
    "ignore_eos": ("TYPE_BOOL", [1], True),
}
OUTPUTS = {
    "text_output": ("TYPE_STRING", [-1]),
    "num_input_tokens": ("TYPE_INT32", [1]),
    "num_output_tokens": ("TYPE_INT32", [1]),
    "finish_reason": ("TYPE_STRING", [1]),  # ours: stop, length, cancelled
}
NEUTRAL = {"beam_width": (1,), "num_return_sequences": (1,)}


@dataclass
class TritonRequest:
    text: str
    params: SamplingParams
    mode: str | None
    stream: bool
    exclude_input: bool


def scalar(inputs: dict[str, np.ndarray], name: str, default=None):
    value = inputs.get(name)
    if value is None:
        return default
    flat = np.asarray(value).reshape(-1)
    if flat.size != 1:
        raise InvalidRequest(f"{name} must hold one value (got {flat.size})", param=name)
    item = flat[0]
    return item.decode("utf-8") if isinstance(item, bytes) else item.item()


def strings(inputs: dict[str, np.ndarray], name: str) -> list[str]:
    value = inputs.get(name)
    if value is None:
        return []
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(value).reshape(-1) if v]


def parse(inputs: dict[str, np.ndarray]) -> TritonRequest:
    """A request's input tensors (name -> numpy array) as a generation request; InvalidRequest if wrong."""
    unknown = set(inputs) - set(INPUTS)
    if unknown:
        raise InvalidRequest(f"unknown inputs: {', '.join(sorted(unknown))}")
    if "text_input" not in inputs:
        raise InvalidRequest("text_input is required", param="text_input")
    try:
        text = scalar(inputs, "text_input")
    except UnicodeDecodeError:
        raise InvalidRequest("text_input is not valid UTF-8", param="text_input") from None
    if "max_tokens" not in inputs:
        raise InvalidRequest("max_tokens is required", param="max_tokens")
    for name, neutral in NEUTRAL.items():
        value = scalar(inputs, name)
        if value is not None and value not in neutral:
            raise InvalidRequest(f"{name}={value} is not supported by this model", param=name)
    if strings(inputs, "bad_words"):
        raise InvalidRequest("bad_words is not supported by this model", param="bad_words")
    end_id = scalar(inputs, "end_id")
    seed = scalar(inputs, "seed")
    try:
        params = SamplingParams(max_tokens=int(scalar(inputs, "max_tokens")),
                                temperature=float(scalar(inputs, "temperature", 0.0)),
                                top_p=float(scalar(inputs, "top_p", 1.0)), top_k=int(scalar(inputs, "top_k", 0)),
                                seed=None if seed is None else int(seed), stop=strings(inputs, "stop_words"),
                                stop_token_ids=[] if end_id is None else [int(end_id)],
                                ignore_eos=bool(scalar(inputs, "ignore_eos", False)),
                                presence_penalty=float(scalar(inputs, "presence_penalty", 0.0)),
                                frequency_penalty=float(scalar(inputs, "frequency_penalty", 0.0)),
                                repetition_penalty=float(scalar(inputs, "repetition_penalty", 1.0)))
    except ValueError as e:
        raise InvalidRequest(str(e)) from None
    return TritonRequest(text, params, scalar(inputs, "mixquant_mode"), bool(scalar(inputs, "stream", False)),
                         bool(scalar(inputs, "exclude_input_in_output", False)))


def config_pbtxt(name: str, decoupled: bool, parameters: dict[str, str], max_batch_size: int = 64) -> str:
    """The model's config.pbtxt."""
    def field(n: str, kind: str, dims: list[int], optional: bool = False) -> str:
        return ("  {\n    name: \"%s\"\n    data_type: %s\n    dims: [ %s ]\n%s  }"
                % (n, kind, ", ".join(map(str, dims)), "    optional: true\n" if optional else ""))
    inputs = ",\n".join(field(n, *spec) for n, spec in INPUTS.items())
    outputs = ",\n".join(field(n, *spec) for n, spec in OUTPUTS.items())
    params = "\n".join('parameters: {\n  key: "%s"\n  value: { string_value: "%s" }\n}' % kv for kv in parameters.items())
    return (f'name: "{name}"\nbackend: "python"\nmax_batch_size: {max_batch_size}\n\n'
            f"model_transaction_policy {{\n  decoupled: {'true' if decoupled else 'false'}\n}}\n\n"
            f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n\n{params}\n\n"
            "instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n")
