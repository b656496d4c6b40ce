"""NVIDIA Dynamo on Kubernetes: one `DynamoGraphDeployment` (nvidia.com/v1beta1, Dynamo 1.6's
operator) with Dynamo's frontend, our context workers as its prefill component and our generation
workers as its decode component, each pool on the GPU family its precision needs.

The operator sets the `DYN_*` discovery and runtime settings (Kubernetes discovery) and the system
port the probes reach (`DYN_SYSTEM_PORT`, 9090, written here too). Every component mounts the
engines, the frontend included: it reads the tokenizer and chat template from the model's folder.
"""

from __future__ import annotations

from typing import Any

from trtllm_mixquant.deploy import pods
from trtllm_mixquant.deploy.spec import DeployError, DeploySpec, Pool

HTTP_PORT, SYSTEM_PORT = 8000, 9090


def _component(spec: DeploySpec, name: str, kind: str, replicas: int, container: dict, pool: Pool | None) -> dict:
    container = {"name": "main", "image": spec.image, **container}
    return {"name": name, "type": kind, "replicas": replicas, "sharedMemorySize": pods.SHM_SIZE,
            "podTemplate": {"metadata": {"labels": pods.labels(spec, name)},
                            "spec": pods.pod_spec(spec, [container], pool, shm=False)}}


def _worker(spec: DeploySpec, role: str, pool: Pool) -> dict:
    container = {
        "command": ["trtllm-mixquant", "worker"],
        "args": ["--role", role, spec.engine_path, "--served-model-name", spec.name],
        "env": pods.env({"DYN_SYSTEM_PORT": SYSTEM_PORT, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}),
        "ports": [{"name": "system", "containerPort": SYSTEM_PORT}],
        "resources": pods.gpu_resources(pool.gpus),
        "startupProbe": pods.http_probe("/health", SYSTEM_PORT, period=5, failures=120),
        "readinessProbe": pods.http_probe("/health", SYSTEM_PORT, period=5),
        "livenessProbe": pods.http_probe("/live", SYSTEM_PORT, period=10, failures=6),
    }
    return _component(spec, role, "prefill" if role == "context" else "decode", pool.replicas, container, pool)


def graph_deployment(spec: DeploySpec) -> dict[str, Any]:
    if spec.context.gpus > 1 or spec.generation.gpus > 1:
        raise DeployError("our Dynamo workers use one GPU each (their decode workers pull KV, which tensor-parallel "
                          "workers do not offer yet); ask for more replicas, use the kubernetes target (`serve` runs "
                          "tensor-parallel workers), or --target trtllm for tensor-parallel TensorRT-LLM servers")
    frontend = {
        "command": ["python3", "-m", "dynamo.frontend"],
        "args": ["--http-port", str(HTTP_PORT), "--router-mode", "kv"],
        "env": pods.env({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}),
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        "readinessProbe": pods.http_probe("/health", HTTP_PORT, period=5),
        "livenessProbe": {"tcpSocket": {"port": HTTP_PORT}, "periodSeconds": 10, "failureThreshold": 6},
    }
    components = [_component(spec, "frontend", "frontend", 1, frontend, None),
                  _worker(spec, "context", spec.context), _worker(spec, "generation", spec.generation)]
    return {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": pods.labels(spec, "graph")},
            "spec": {"components": components}}
