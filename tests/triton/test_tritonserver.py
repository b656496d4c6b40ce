"""The real tritonserver (2.51, from the nvidia-pytriton wheel) serving a model repository that
`write_repository` wrote for tiny random engines (fp32, so greedy tokens are comparable with the
offline LLM): generate, generate_stream, gRPC streaming with tritonclient, KServe infer on the
non-decoupled model, custom metrics, 16 concurrent streams, a cancelled stream's KV freed, and bad
inputs answered with Triton errors while the server keeps serving."""

from __future__ import annotations

import json
import queue
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from trtllm_mixquant.ports import free_port
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams

pytestmark = pytest.mark.slow  # a real tritonserver
BLOCKS = 64
PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 3, "a", "xyz" * 30]


@pytest.fixture(scope="module")
def triton(tiny_engines, tmp_path_factory):
    from trtllm_mixquant.triton.repository import write_repository
    from trtllm_mixquant.triton.server import Ports, TritonSetupError, install_server, prepare_env, start_server, wait_ready

    try:
        files, env = install_server(), prepare_env()
    except TritonSetupError as e:
        pytest.skip(f"tritonserver cannot be prepared here: {e}")
    engines = tiny_engines("qwen3", "nvfp4")
    root = tmp_path_factory.mktemp("triton")
    params = {"dtype": "float32", "device": "cpu", "kv_cache_blocks": str(BLOCKS)}
    repository = write_repository(engines, root / "repository", params, env)
    write_repository(engines, repository, {**params, "topology": "disaggregated"}, env, {"mixquant_disagg": True})
    ports = Ports(free_port(), free_port(), free_port())
    log = open(root / "tritonserver.log", "w")
    process = start_server(files, repository, ports, log=log)
    url = f"http://127.0.0.1:{ports.http}"
    try:
        startup = wait_ready(url, process)
        print(f"\ntritonserver ready in {startup:.1f} s")
        yield url, ports, engines
    finally:
        process.terminate()
        process.wait(60)
        log.close()


@pytest.fixture(scope="module")
def offline(triton):
    return {mode: LLM(triton[2], mode=mode, dtype=torch.float32) for mode in ("mixquant", "bf16")}


def call(url: str, path: str, body: dict | None = None, timeout: float = 120) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def events(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def metric(url_metrics: str, prefix: str) -> float:
    with urllib.request.urlopen(url_metrics + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_health_and_model_configs(triton):
    url = triton[0]
    assert call(url, "/v2/health/ready")[0] == 200
    for name, decoupled in (("mixquant", True), ("mixquant_infer", False)):
        status, text = call(url, f"/v2/models/{name}/config")
        config = json.loads(text)
        assert status == 200 and config["model_transaction_policy"]["decoupled"] is decoupled
        assert {"text_input", "max_tokens", "stream", "mixquant_mode"} <= {i["name"] for i in config["input"]}
        assert {"text_output", "num_output_tokens", "finish_reason"} <= {o["name"] for o in config["output"]}


@pytest.mark.parametrize("mode", ["mixquant", "bf16"])
def test_generate_and_generate_stream_equal_the_offline_llm(triton, offline, mode):
    url, llm = triton[0], offline[mode]
    for prompt, out in zip(PROMPTS, llm.generate(PROMPTS, SamplingParams(max_tokens=8, ignore_eos=True))):
        body = {"text_input": prompt, "max_tokens": 8, "ignore_eos": True, "mixquant_mode": mode}
        status, text = call(url, "/v2/models/mixquant/generate", {**body, "exclude_input_in_output": True})
        reply = json.loads(text)
        assert status == 200 and reply["text_output"] == out.text and reply["num_output_tokens"] == 8
        assert reply["finish_reason"] == "length" and reply["num_input_tokens"] == len(llm.tokens(prompt))
        status, text = call(url, "/v2/models/mixquant/generate", body)  # TensorRT-LLM's default: the prompt first
        assert json.loads(text)["text_output"] == prompt + out.text
        status, text = call(url, "/v2/models/mixquant/generate_stream", {**body, "stream": True})
        assert status == 200 and "".join(e["text_output"] for e in events(text)) == out.text


def test_kserve_infer_on_the_non_decoupled_model(triton, offline):
    url = triton[0]
    out = offline["mixquant"].generate(PROMPTS[1], SamplingParams(max_tokens=6, ignore_eos=True))[0]
    body = {"inputs": [{"name": "text_input", "shape": [1, 1], "datatype": "BYTES", "data": [PROMPTS[1]]},
                       {"name": "max_tokens", "shape": [1, 1], "datatype": "INT32", "data": [6]},
                       {"name": "ignore_eos", "shape": [1, 1], "datatype": "BOOL", "data": [True]},
                       {"name": "exclude_input_in_output", "shape": [1, 1], "datatype": "BOOL", "data": [True]}]}
    status, text = call(url, "/v2/models/mixquant_infer/infer", body)
    outputs = {o["name"]: o["data"] for o in json.loads(text)["outputs"]}
    assert status == 200 and outputs["text_output"] == [out.text] and outputs["num_output_tokens"] == [6]
    assert call(url, "/v2/models/mixquant/infer", body)[0] != 200  # KServe infer refuses decoupled models


def grpc_inputs(prompt: str, max_tokens: int, **extra):
    import tritonclient.grpc as grpcclient

    values = {"text_input": np.array([[prompt.encode()]], dtype=object),
              "max_tokens": np.array([[max_tokens]], dtype=np.int32), "stream": np.array([[True]]),
              "ignore_eos": np.array([[True]]), **{k: np.array([[v]]) for k, v in extra.items()}}
    kinds = {np.dtype(object): "BYTES", np.dtype(np.int32): "INT32", np.dtype(bool): "BOOL"}
    inputs = []
    for name, value in values.items():
        tensor = grpcclient.InferInput(name, list(value.shape), kinds[value.dtype])
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    return inputs


def test_grpc_streaming_with_tritonclient(triton, offline):
    import tritonclient.grpc as grpcclient

    out = offline["mixquant"].generate(PROMPTS[0], SamplingParams(max_tokens=10, ignore_eos=True))[0]
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{triton[1].grpc}")
    got: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    client.async_stream_infer("mixquant", grpc_inputs(PROMPTS[0], 10), request_id="g1")
    pieces = []
    while True:
        result, error = got.get(timeout=60)
        assert error is None, error
        pieces.append(result.as_numpy("text_output").reshape(-1)[0].decode())
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
    client.stop_stream()
    assert "".join(pieces) == out.text


def test_the_disaggregated_topology_inside_the_model_instance(triton, offline):
    """Context and generation workers started by the model instance, KV moved by torch.distributed."""
    url = triton[0]
    for prompt, out in zip(PROMPTS, offline["mixquant"].generate(PROMPTS, SamplingParams(max_tokens=8, ignore_eos=True))):
        status, text = call(url, "/v2/models/mixquant_disagg/generate_stream",
                            {"text_input": prompt, "max_tokens": 8, "ignore_eos": True, "stream": True})
        assert status == 200 and "".join(e["text_output"] for e in events(text)) == out.text
    status, text = call(url, "/v2/models/mixquant_disagg/generate",
                        {"text_input": "a", "max_tokens": 2, "mixquant_mode": "quantized"})
    assert status == 400 and "use --topology colocated" in json.loads(text)["error"]


def wait_blocks_free(metrics_url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while metric(metrics_url, 'mixquant_kv_blocks{kind="free"') != 4 * BLOCKS:  # every worker's pool
        assert time.monotonic() < deadline, "KV blocks were not freed"
        time.sleep(0.2)


def test_a_cancelled_stream_frees_its_kv_and_metrics_count(triton):
    import tritonclient.grpc as grpcclient

    url, ports = triton[0], triton[1]
    metrics_url = f"http://127.0.0.1:{ports.metrics}"
    generated = metric(metrics_url, "mixquant_generation_tokens_total")
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{ports.grpc}")
    got: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    client.async_stream_infer("mixquant", grpc_inputs("a", 1500), request_id="long")
    assert got.get(timeout=60)[1] is None  # it is generating
    client.stop_stream(cancel_requests=True)
    wait_blocks_free(metrics_url)
    assert metric(metrics_url, "mixquant_generation_tokens_total") > generated
    assert metric(metrics_url, "mixquant_time_to_first_token_seconds_count") > 0
    assert metric(metrics_url, 'mixquant_prompt_tokens_total{model="mixquant",precision="nvfp4"}') > 0
    assert call(url, "/v2/models/mixquant/generate", {"text_input": "a", "max_tokens": 2})[0] == 200


def test_16_concurrent_streams(triton, offline):
    url, llm = triton[0], offline["mixquant"]
    prompts = [f"stream {i}: " + "abc " * (i % 7) for i in range(16)]
    expected = [o.text for o in llm.generate(prompts, SamplingParams(max_tokens=12, ignore_eos=True))]

    def one(prompt: str) -> str:
        status, text = call(url, "/v2/models/mixquant/generate_stream",
                            {"text_input": prompt, "max_tokens": 12, "ignore_eos": True, "stream": True})
        return "".join(e["text_output"] for e in events(text)) if status == 200 else f"HTTP {status}"
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(one, prompts)) == expected


@pytest.mark.parametrize("body, words", [
    ({"max_tokens": 4}, "missing required input(s) ['text_input']"),
    ({"text_input": "a", "max_tokens": -1}, "max_tokens must be at least 1"),
    ({"text_input": "a", "max_tokens": 4, "mixquant_mode": "fp4"}, "mode must be one of"),
    ({"text_input": "a", "max_tokens": 4, "mixquant_mode": "quantized", "temperature": -1.0}, "temperature"),
    ({"text_input": "a", "max_tokens": 9000}, "maximum sequence length"),
    ({"text_input": "a", "max_tokens": 4, "beam_width": 2}, "beam_width=2 is not supported"),
])
def test_bad_inputs_get_triton_errors_and_the_server_keeps_serving(triton, body, words):
    url = triton[0]
    for path in ("/v2/models/mixquant/generate", "/v2/models/mixquant_infer/generate"):
        status, text = call(url, path, body)
        assert status == 400 and words in json.loads(text)["error"], text
    assert call(url, "/v2/models/mixquant/generate", {"text_input": "ok", "max_tokens": 2})[0] == 200

