"""Plain Kubernetes for the one-host server: `trtllm-mixquant serve` in one pod (its context and
generation workers are processes of that pod, one GPU per tensor-parallel rank), a Service, a ConfigMap with its
environment, a PodDisruptionBudget, probes on /health and Prometheus scrape annotations.

One pod lands on one node, so it takes the context pool's GPU family (an NVFP4 pair: Blackwell,
which decodes in BF16 too). Spread over node pools with the Dynamo target instead.
"""

from __future__ import annotations

from typing import Any

from trtllm_mixquant.deploy import pods
from trtllm_mixquant.deploy.spec import DeployError, DeploySpec, Pool

PORT = 8000


def serve_manifests(spec: DeploySpec, replicas: int = 1) -> list[dict[str, Any]]:
    name, selector = f"{spec.name}-serve", pods.labels(spec, "serve")
    gpus = spec.context.replicas * spec.context.gpus + spec.generation.replicas * spec.generation.gpus
    if gpus > spec.gpus_per_node:
        raise DeployError(f"`serve` runs in one pod, on one node of {spec.gpus_per_node} GPUs, and these pools need "
                          f"{gpus}; use the dynamo target to spread workers over nodes")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-env", "labels": selector},
              "data": {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}}
    container = {
        "name": "serve", "image": spec.image,
        "command": ["trtllm-mixquant", "serve", spec.engine_path],
        "args": ["--host", "0.0.0.0", "--port", str(PORT), "--context-workers", str(spec.context.replicas),
                 "--generation-workers", str(spec.generation.replicas), "--metrics-without-key",
                 "--context-tensor-parallel-size", str(spec.context.gpus),
                 "--tensor-parallel-size", str(spec.generation.gpus)],
        "envFrom": [{"configMapRef": {"name": f"{name}-env"}}],
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": pods.gpu_resources(gpus),
        # /health answers 503 while a worker is being replaced: readiness takes the pod out of the
        # Service meanwhile, and only a dead process (no TCP answer) restarts it.
        "startupProbe": pods.http_probe("/health", "http", period=5, failures=120),
        "readinessProbe": pods.http_probe("/health", "http", period=5),
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "failureThreshold": 6},
    }
    pool = Pool(1, gpus, spec.context.node_selector)
    template = {"metadata": {"labels": selector, "annotations": {
        "prometheus.io/scrape": "true", "prometheus.io/port": str(PORT), "prometheus.io/path": "/metrics"}},
        "spec": pods.pod_spec(spec, [container], pool)}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": selector},
                  "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": template,
                           "strategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": selector},
               "spec": {"selector": selector, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}}
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
              "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}}}
    for manifest in (config, deployment, service, budget):
        manifest["metadata"]["namespace"] = spec.namespace
    return [config, deployment, service, budget]
