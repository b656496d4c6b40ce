"""Validation of what `trtllm-mixquant deploy` writes, offline: core kinds with kubernetes-validate
(`--strict`: unknown fields are errors), custom resources with jsonschema against their CRD's
openAPIV3Schema (kept in schemas/, with sources), each embedded pod template as a core
PodTemplate, and TensorRT-LLM's YAMLs against the names in references/trtllm.yaml."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).parent
K8S_VERSION = "1.33.0"
CUSTOM = {("nvidia.com/v1beta1", "DynamoGraphDeployment"): "dynamographdeployment-v1beta1.json",
          ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): "leaderworkerset-v1.json"}
TRTLLM = yaml.safe_load((HERE / "references" / "trtllm.yaml").read_text())


def strict(schema: dict) -> dict:
    """Close every object that lists its properties (the API server's strict field validation);
    pod-template markers become placeholders checked separately."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("x-pod-template"):
                return {"type": "object"}
            node = {k: walk(v) for k, v in node.items()}
            if "properties" in node and "additionalProperties" not in node and \
                    not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(schema)


def pod_templates(node, schema) -> list[dict]:
    """The values of `node` that the schema marks as pod templates."""
    found = []
    if isinstance(schema, dict) and schema.get("x-pod-template"):
        return [node]
    if isinstance(node, dict) and isinstance(schema, dict):
        for key, value in node.items():
            found += pod_templates(value, schema.get("properties", {}).get(key, {}))
    elif isinstance(node, list) and isinstance(schema, dict):
        for value in node:
            found += pod_templates(value, schema.get("items", {}))
    return found


def validate_manifest(doc: dict) -> None:
    """Raise on anything a strict API server would refuse (schema level; CEL rules and webhooks aside)."""
    import kubernetes_validate

    key = (doc["apiVersion"], doc["kind"])
    if key not in CUSTOM:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        return
    schema = json.loads((HERE / "schemas" / CUSTOM[key]).read_text())["openAPIV3Schema"]
    jsonschema.Draft7Validator(strict(schema)).validate(doc)
    for template in pod_templates(doc, schema):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                                      "template": template}, K8S_VERSION, strict=True)


def check_trtllm_args(config: dict, extra: tuple[str, ...] = ()) -> None:
    """An LLM-arguments mapping uses only TensorRT-LLM's names."""
    unknown = set(config) - set(TRTLLM["llm_args"]) - set(extra)
    assert not unknown, f"not TensorRT-LLM LLM arguments: {sorted(unknown)}"
    assert set(config.get("kv_cache_config", {})) <= set(TRTLLM["kv_cache_config"])
    transceiver = config.get("cache_transceiver_config", {})
    assert set(transceiver) <= set(TRTLLM["cache_transceiver_config"])
    assert transceiver.get("backend", "NIXL") in TRTLLM["cache_transceiver_backends"]


def check_disagg(config: dict) -> None:
    check_trtllm_args({k: v for k, v in config.items() if k not in TRTLLM["disagg_top"]})
    for section in ("context_servers", "generation_servers"):
        servers = config[section]
        check_trtllm_args(servers, extra=tuple(TRTLLM["disagg_servers"]))
        assert servers["num_instances"] == len(servers["urls"])  # disagg_utils refuses otherwise
        assert all(len(url.split(":")) == 2 for url in servers["urls"])  # it splits host:port once
        assert servers["router"]["type"] in TRTLLM["router_types"]
