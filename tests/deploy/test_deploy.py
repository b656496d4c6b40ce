"""`trtllm-mixquant deploy`: every manifest valid against Kubernetes' and the CRDs' schemas, the
TensorRT-LLM YAMLs within TensorRT-LLM's own names, a mismatched pair refused before anything is
written, and the Dynamo and plain manifests' commands really serving a chat request together."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.deploy.local_run import LocalPods
from tests.deploy.validate import TRTLLM, check_disagg, check_trtllm_args, validate_manifest
from trtllm_mixquant.deploy.spec import DeployError, Pool, make_spec
from trtllm_mixquant.dynamo.local import get, routable_models, serving_workers
from trtllm_mixquant.deploy.write import render, write

pytest.importorskip("kubernetes_validate")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engines(tiny_engines):
    return tiny_engines("qwen3", "nvfp4")


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def documents(files: dict[str, str], name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(files[name]) if d]


@pytest.mark.parametrize("storage", ["pvc:engines-claim", "image"])
def test_dynamo_and_kubernetes_manifests_are_valid(engines, storage):
    spec = make_spec(engines, "mixquant", Pool(2), Pool(3), storage=storage)
    graph = documents(render(spec, "dynamo"), "graph.yaml")
    serve = documents(render(spec, "kubernetes"), "serve.yaml")
    assert [d["kind"] for d in serve] == ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    for doc in graph + serve:
        validate_manifest(doc)
    components = {c["name"]: c for c in graph[0]["spec"]["components"]}
    assert {n: (c["type"], c["replicas"]) for n, c in components.items()} == {
        "frontend": ("frontend", 1), "context": ("prefill", 2), "generation": ("decode", 3)}
    context = components["context"]["podTemplate"]["spec"]
    assert context["nodeSelector"] == {"nvidia.com/gpu.family": "blackwell"}  # NVFP4 context engine
    assert components["generation"]["podTemplate"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.family": "hopper"}
    assert context["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    deployment = serve[1]["spec"]["template"]
    assert deployment["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 5}
    assert deployment["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_kubernetes_serve_gives_each_tensor_parallel_rank_a_gpu(engines):
    serve = documents(render(make_spec(engines, "mixquant", Pool(1, 2), Pool(2, 2)), "kubernetes"), "serve.yaml")
    container = serve[1]["spec"]["template"]["spec"]["containers"][0]
    validate_manifest(serve[1])
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 6}  # 1 x TP 2 context + 2 x TP 2 generation
    args = container["args"]
    assert args[args.index("--context-tensor-parallel-size") + 1] == "2"
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    with pytest.raises(DeployError, match="one node of 8 GPUs"):
        render(make_spec(engines, "mixquant", Pool(2, 2), Pool(2, 4)), "kubernetes")


def test_a_typo_in_a_manifest_is_caught(engines):
    """The validation itself: an unknown field fails it, in a core kind and in a custom resource."""
    import jsonschema

    spec = make_spec(engines, "mixquant")
    graph = documents(render(spec, "dynamo"), "graph.yaml")[0]
    graph["spec"]["components"][1]["replica"] = 2
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        validate_manifest(graph)
    deployment = documents(render(spec, "kubernetes"), "serve.yaml")[1]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(Exception, match="imagePullPolicyy"):
        validate_manifest(deployment)


def test_dynamos_own_template_passes_the_same_validation():
    """Dynamo 1.6.1's shipped DGD template checks out against our schema subset (it is not too strict)."""
    dynamo = pytest.importorskip("dynamo.profiler")
    template = Path(dynamo.__file__).parent / "templates" / "dgd" / "trtllm" / "disagg.yaml"
    validate_manifest(yaml.safe_load(template.read_text()))


@pytest.mark.parametrize("gpus, nodes", [(2, 1), (16, 2)])
def test_trtllm_configs_use_only_tensorrt_llms_names(engines, gpus, nodes):
    spec = make_spec(engines, "mixquant", Pool(2, gpus), Pool(1, 2), gpus_per_node=8)
    files = render(spec, "trtllm")
    context, generation = (yaml.safe_load(files[f"{r}.yaml"]) for r in ("context", "generation"))
    for config in (context, generation):
        check_trtllm_args(config)
        assert config["kv_cache_config"]["dtype"] == "auto"  # both BF16: the build leaves the KV cache unquantized
        assert config["kv_cache_config"]["tokens_per_block"] == spec.layout.block_size
    assert context["disable_overlap_scheduler"] is True and "disable_overlap_scheduler" not in generation
    assert (context["tensor_parallel_size"], generation["tensor_parallel_size"]) == (gpus, 2)
    for name in ("disagg.yaml", "disagg-local.yaml"):
        check_disagg(yaml.safe_load(files[name]))
    launch = files["launch.sh"]
    flags = {w for line in launch.splitlines() if "trtllm-serve" in line for w in line.split() if w.startswith("-")}
    assert flags <= set(TRTLLM["serve_flags"]) | set(TRTLLM["disaggregated_flags"])
    docs = documents(files, "trtllm.yaml")
    for doc in docs:
        validate_manifest(doc)
    sets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "LeaderWorkerSet"}
    group = sets["mixquant-context"]["spec"]["leaderWorkerTemplate"]
    assert group["size"] == nodes and ("leaderTemplate" in group) == (nodes > 1)


def test_a_mismatched_pair_is_refused_before_anything_is_written(engines, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(engines, bad)
    manifest = json.loads((bad / "context" / "engine.json").read_text())
    manifest["kv_cache"]["block_size"] *= 2
    (bad / "context" / "engine.json").write_text(json.dumps(manifest))
    with pytest.raises(DeployError, match="block_size"):
        make_spec(bad, "bad")
    shutil.copytree(engines, tmp_path / "fp8kv")
    quant = json.loads((tmp_path / "fp8kv" / "context" / "hf_quant_config.json").read_text())
    quant["quantization"]["kv_cache_quant_algo"] = "FP8"
    (tmp_path / "fp8kv" / "context" / "hf_quant_config.json").write_text(json.dumps(quant))
    with pytest.raises(DeployError, match="quantizes its KV cache"):
        make_spec(tmp_path / "fp8kv", "fp8kv")
    spec = make_spec(engines, "mixquant", Pool(1, 2))  # our Dynamo workers are not tensor parallel
    out = tmp_path / "out"
    with pytest.raises(DeployError, match="one GPU each"):
        write(spec, ["trtllm", "kubernetes", "dynamo"], out)
    assert not out.exists()  # trtllm would have been fine: nothing is written when any target refuses


@pytest.mark.slow
@pytest.mark.parametrize("target, manifest, service", [("kubernetes", "serve.yaml", "mixquant-serve"),
                                                       ("dynamo", "graph.yaml", None)])
def test_the_manifests_commands_serve_a_chat_request_together(engines, tmp_path, target, manifest, service):
    if target == "dynamo":
        pytest.importorskip("dynamo.frontend")
    pytest.importorskip("nixl")
    import openai

    spec = make_spec(engines, "mixquant", storage="pvc:engines")
    docs = documents(render(spec, target), manifest)
    pods = LocalPods(docs, {"engines": engines.parent}, tmp_path).start()
    try:
        pods.wait_ready()
        url = pods.service_url(service) if service else pods.container("frontend").url("http")
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
        if target == "dynamo":  # each pod's readiness is not yet the frontend routing through both roles
            wait_for(lambda: all(serving_workers(url).values()) and routable_models(url))
        model = "mixquant" if target == "dynamo" else engines.name  # `serve` names the model after its folder
        reply = client.chat.completions.create(model=model, max_tokens=8, temperature=0,
                                               messages=[{"role": "user", "content": "hello there"}])
        assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens > 0
        if target == "dynamo":  # the quantized prefill ran on the context pod
            metrics = get(pods.container("context").url(9090) + "/metrics")[1]
            assert 'mixquant_requests_total{' in metrics and 'outcome="prefilled"' in metrics
    finally:
        pods.stop()


@pytest.mark.slow
def test_the_committed_deployments_are_what_deploy_writes(tmp_path, monkeypatch):
    """deploy/tiny-agent holds the shipped model's deployments; a build of that model rewrites them."""
    from trtllm_mixquant.builder.pipeline import BuildOptions, build_engines

    monkeypatch.chdir(tmp_path)
    build_engines(BuildOptions(model=ROOT / "trtllm_mixquant" / "assets" / "tiny-agent",
                               output=Path("engines/tiny-agent"), calib_samples=2, calib_seq_len=32, device="cpu"))
    written = write(make_spec(Path("engines/tiny-agent")), ["dynamo", "kubernetes", "trtllm"], Path("deploy"))
    committed = ROOT / "deploy" / "tiny-agent"
    assert sorted(p.relative_to("deploy").as_posix() for p in written) == sorted(
        p.relative_to(committed).as_posix() for p in committed.rglob("*") if p.is_file())
    for path in written:
        assert path.read_text() == (committed / path.relative_to("deploy")).read_text(), path


def test_build_py_writes_deployments_next_to_the_engines(tiny_model_dir, tmp_path):
    from trtllm_mixquant.builder.cli import main as build_main

    out = tmp_path / "pair"
    assert build_main(["--model", str(tiny_model_dir()), "--output", str(out), "--calib-samples", "2",
                       "--calib-seq-len", "32", "--device", "cpu", "-q", "--deploy", "dynamo,kubernetes"]) == 0
    assert {p.relative_to(out / "deploy").as_posix() for p in (out / "deploy").rglob("*.yaml")} == {
        "dynamo/graph.yaml", "kubernetes/serve.yaml"}
