"""TensorRT-LLM, the production backend where it is installed: `trtllm-serve` configurations for the
context and generation servers of an engine pair, the `trtllm-serve disaggregated` configuration
that routes between them, a launch script for one host and Kubernetes manifests for many.

Every key comes from TensorRT-LLM's own references (`LlmArgs`, `KvCacheConfig`,
`CacheTransceiverConfig`, `disagg_utils.py`; the tests check them against copies kept as test data).
The context server loads our ModelOpt NVFP4/FP8 checkpoint (`NAME/context`), the generation server
the BF16 one (`NAME/generation`); both keep the KV cache in the checkpoint's dtype (`auto`, BF16:
the build leaves it unquantized) with the same tokens per block, and move it with the cache
transceiver. None of this has been run here: TensorRT-LLM cannot be installed on our machines.
"""

from __future__ import annotations

import math
from typing import Any

from trtllm_mixquant.deploy import pods
from trtllm_mixquant.deploy.spec import DeployError, DeploySpec, Pool

FRONT_PORT, SERVER_PORT = 8000, 8001
IMAGE = "nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc29"  # the TensorRT-LLM Dynamo 1.6.1 pins; choose yours
ROUTERS = {"context": "kv_cache_aware", "generation": "load_balancing"}  # TensorRT-LLM's router types


def server_config(spec: DeploySpec, role: str, max_batch_size: int, transceiver: str) -> dict[str, Any]:
    """The LLM API options of one role's servers (`trtllm-serve MODEL --config FILE`)."""
    pool = spec.context if role == "context" else spec.generation
    config = {"tensor_parallel_size": pool.gpus, "max_batch_size": max_batch_size,
              "max_num_tokens": 8192, "max_seq_len": spec.dirs.max_seq_len,
              "kv_cache_config": {"dtype": "auto", "tokens_per_block": spec.layout.block_size,
                                  "enable_block_reuse": True, "free_gpu_memory_fraction": 0.85},
              "cache_transceiver_config": {"backend": transceiver, "max_tokens_in_buffer": spec.dirs.max_seq_len}}
    if role == "context":
        config["disable_overlap_scheduler"] = True  # TensorRT-LLM's rule for context-only servers
    return config


def server_urls(spec: DeploySpec, role: str, local: bool) -> list[str]:
    pool = spec.context if role == "context" else spec.generation
    if local:
        first = SERVER_PORT + (0 if role == "context" else spec.context.replicas)
        return [f"localhost:{first + i}" for i in range(pool.replicas)]
    name = f"{spec.name}-{role}"  # a LeaderWorkerSet's leader pod i is NAME-i in the headless service NAME
    return [f"{name}-{i}.{name}.{spec.namespace}.svc.cluster.local:{SERVER_PORT}" for i in range(pool.replicas)]


def disagg_config(spec: DeploySpec, configs: dict[str, dict], local: bool) -> dict[str, Any]:
    """`trtllm-serve disaggregated -c FILE`: the servers (with their LLM options) and the routers."""
    sections = {}
    for role, key in (("context", "context_servers"), ("generation", "generation_servers")):
        urls = server_urls(spec, role, local)
        sections[key] = {"num_instances": len(urls), "urls": urls, "router": {"type": ROUTERS[role]}, **configs[role]}
    return {"hostname": "0.0.0.0", "port": FRONT_PORT, "max_retries": 1, **sections}


def launch_script(spec: DeploySpec, folder: str = "$(dirname \"$0\")") -> str:
    """One host: every server on its own GPUs, then the disaggregated front end on port 8000."""
    lines = ["#!/usr/bin/env bash", "# TensorRT-LLM disaggregated serving of one engine pair on one host (not run "
             "here: TensorRT-LLM cannot be installed on our machines).", "set -euo pipefail",
             f"HERE={folder}", f"ENGINES=${{ENGINES:-{spec.engine_dir}}}", "pids=()"]
    gpu = 0
    for role in ("context", "generation"):
        pool = spec.context if role == "context" else spec.generation
        for url in server_urls(spec, role, local=True):
            devices = ",".join(str(g) for g in range(gpu, gpu + pool.gpus))
            gpu += pool.gpus
            lines.append(f"CUDA_VISIBLE_DEVICES={devices} trtllm-serve \"$ENGINES/{role}\" --host localhost "
                         f"--port {url.rsplit(':', 1)[1]} --config \"$HERE/{role}.yaml\" &")
            lines.append("pids+=($!)")
    lines += ["trap 'kill \"${pids[@]}\"' EXIT", "trtllm-serve disaggregated -c \"$HERE/disagg-local.yaml\" "
              "--server_start_timeout 1800 --request_timeout 600"]
    return "\n".join(lines) + "\n"


def _leader_command(spec: DeploySpec, role: str, pool: Pool, size: int) -> list[str]:
    serve = (f"trtllm-serve {spec.engine_path}/{role} --host 0.0.0.0 --port {SERVER_PORT} "
             f"--config /config/{role}.yaml")
    if size == 1:
        return ["bash", "-c", f"exec {serve}"]
    per_node = pool.gpus // size
    # mpirun over the group's pods (over SSH); LWS names workers LEADER-1 ... LEADER-(size-1)
    hosts = ('first=${LWS_LEADER_ADDRESS%%.*}; rest=${LWS_LEADER_ADDRESS#*.}; '
             f'hosts=$LWS_LEADER_ADDRESS:{per_node}; '
             f'for i in $(seq 1 $((LWS_GROUP_SIZE - 1))); do hosts=$hosts,$first-$i.$rest:{per_node}; done; ')
    return ["bash", "-c", hosts + f"exec mpirun --allow-run-as-root -np {pool.gpus} -H $hosts "
            f"trtllm-llmapi-launch {serve}"]


def _server_set(spec: DeploySpec, role: str, image: str) -> dict[str, Any]:
    pool = spec.context if role == "context" else spec.generation
    size = math.ceil(pool.gpus / spec.gpus_per_node)
    if pool.gpus % size:
        raise DeployError(f"{pool.gpus} GPUs per {role} server do not split evenly over {size} nodes")
    name, selector = f"{spec.name}-{role}", pods.labels(spec, role)
    config_mount = {"name": "config", "mountPath": "/config", "readOnly": True}
    config_volume = {"name": "config", "configMap": {"name": f"{spec.name}-trtllm"}}

    def template(command: list[str], leader: bool) -> dict[str, Any]:
        container = {"name": "server" if leader else "worker", "image": image, "command": command,
                     "resources": pods.gpu_resources(pool.gpus // size), "volumeMounts": [config_mount]}
        if leader:
            container["ports"] = [{"name": "http", "containerPort": SERVER_PORT}]
            container["readinessProbe"] = pods.http_probe("/health", "http", period=10)
            container["startupProbe"] = pods.http_probe("/health", "http", period=10, failures=180)
        pod = pods.pod_spec(spec, [container], pool, grace=120)
        pod["volumes"].append(config_volume)
        if size > 1:  # mpirun reaches the other pods over SSH with a key the operator provides
            pod["volumes"].append({"name": "ssh", "secret": {"secretName": f"{spec.name}-ssh", "defaultMode": 0o600}})
            container["volumeMounts"].append({"name": "ssh", "mountPath": "/root/.ssh", "readOnly": True})
        return {"metadata": {"labels": selector}, "spec": pod}

    group: dict[str, Any] = {"size": size, "restartPolicy": "RecreateGroupOnPodRestart",
                             "workerTemplate": template(_leader_command(spec, role, pool, size), leader=True)}
    if size > 1:
        group["leaderTemplate"] = group["workerTemplate"]
        group["workerTemplate"] = template(["bash", "-c", "exec /usr/sbin/sshd -D"], leader=False)
    return {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
            "metadata": {"name": name, "namespace": spec.namespace, "labels": selector},
            "spec": {"replicas": pool.replicas, "leaderWorkerTemplate": group,
                     "startupPolicy": "LeaderCreated"}}


def manifests(spec: DeploySpec, files: dict[str, str], image: str) -> list[dict[str, Any]]:
    """The servers as LeaderWorkerSets (a group of pods per tensor-parallel server when it spans
    nodes), the disaggregated front end as a Deployment, its Service, and their configuration."""
    if spec.claim is None:
        raise DeployError("TensorRT-LLM's image does not hold our engines: use --storage pvc:CLAIM")
    selector = pods.labels(spec, "trtllm-frontend")
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": f"{spec.name}-trtllm", "namespace": spec.namespace},
              "data": {k: v for k, v in files.items() if k.endswith(".yaml") and k != "disagg-local.yaml"}}
    front = {"name": "disaggregated", "image": image,
             "command": ["trtllm-serve", "disaggregated", "-c", "/config/disagg.yaml", "--server_start_timeout",
                         "1800", "--request_timeout", "600"],
             "ports": [{"name": "http", "containerPort": FRONT_PORT}],
             "readinessProbe": pods.http_probe("/health", "http", period=10),
             "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}]}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": f"{spec.name}-trtllm", "namespace": spec.namespace, "labels": selector},
                  "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                           "template": {"metadata": {"labels": selector},
                                        "spec": {"containers": [front], "volumes": [
                                            {"name": "config", "configMap": {"name": f"{spec.name}-trtllm"}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": f"{spec.name}-trtllm", "namespace": spec.namespace, "labels": selector},
               "spec": {"selector": selector, "ports": [{"name": "http", "port": FRONT_PORT, "targetPort": "http"}]}}
    return [config, _server_set(spec, "context", image), _server_set(spec, "generation", image), deployment, service]


def files(spec: DeploySpec, max_batch_size: int = 64, transceiver: str = "NIXL") -> dict[str, dict | str]:
    """{file name: YAML data or text}: context.yaml, generation.yaml, disagg.yaml (cluster URLs),
    disagg-local.yaml (launch.sh's URLs) and launch.sh."""
    configs = {role: server_config(spec, role, max_batch_size, transceiver) for role in ("context", "generation")}
    return {"context.yaml": configs["context"], "generation.yaml": configs["generation"],
            "disagg.yaml": disagg_config(spec, configs, local=False),
            "disagg-local.yaml": disagg_config(spec, configs, local=True), "launch.sh": launch_script(spec)}

