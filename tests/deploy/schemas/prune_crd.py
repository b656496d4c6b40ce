"""Shrink a CustomResourceDefinition to the schema test data we keep: one version's openAPIV3Schema,
descriptions dropped, and every embedded PodTemplateSpec replaced by a marker (those are validated
separately, and completely, by kubernetes-validate as core Pod templates).

    python tests/deploy/schemas/prune_crd.py CRD.yaml VERSION OUT.json "source note"
"""

from __future__ import annotations

import json
import sys

import yaml

POD_TEMPLATE = {"type": "object", "x-pod-template": True}  # validated as a core PodTemplateSpec instead


def prune(node):
    if isinstance(node, dict):
        props = node.get("properties", {})
        if set(props) >= {"metadata", "spec"} and "containers" in props["spec"].get("properties", {}):
            return dict(POD_TEMPLATE)
        return {k: prune(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [prune(v) for v in node]
    return node


def main(crd_path: str, version: str, out: str, source: str) -> None:
    crd = yaml.safe_load(open(crd_path))
    (spec,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = prune(spec["schema"]["openAPIV3Schema"])
    json.dump({"source": source, "group": crd["spec"]["group"], "kind": crd["spec"]["names"]["kind"],
               "version": version, "openAPIV3Schema": schema}, open(out, "w"), indent=1, sort_keys=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
