"""Pieces every target's pods share: the engine volume, /dev/shm, GPU resources, HTTP probes,
labels. Plain dicts in the shape of the Kubernetes API (what `kubectl apply` reads)."""

from __future__ import annotations

from typing import Any

from trtllm_mixquant.deploy.spec import PVC_MOUNT, DeploySpec, Pool

SHM_SIZE = "8Gi"  # NIXL/UCX and torch share memory through /dev/shm; Docker's 64 MiB default is too small


def labels(spec: DeploySpec, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "trtllm-mixquant", "app.kubernetes.io/instance": spec.name,
            "app.kubernetes.io/component": component}


def env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in values.items()]


def http_probe(path: str, port: int | str, period: int = 10, failures: int = 3, delay: int = 0) -> dict[str, Any]:
    probe = {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "failureThreshold": failures}
    if delay:
        probe["initialDelaySeconds"] = delay
    return probe


def gpu_resources(gpus: int) -> dict[str, Any]:
    return {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}}


def volumes(spec: DeploySpec, shm: bool = True) -> tuple[list[dict], list[dict]]:
    """(pod volumes, container mounts): the engines (a PVC, unless baked into the image) and /dev/shm."""
    vols, mounts = [], []
    if spec.claim:
        vols.append({"name": "engines", "persistentVolumeClaim": {"claimName": spec.claim, "readOnly": True}})
        mounts.append({"name": "engines", "mountPath": PVC_MOUNT, "readOnly": True})
    if shm:
        vols.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}})
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    return vols, mounts


def pod_spec(spec: DeploySpec, containers: list[dict], pool: Pool | None, shm: bool = True,
             grace: int = 60) -> dict[str, Any]:
    """A pod for `containers` (the first gets the volume mounts), on `pool`'s nodes (None: anywhere)."""
    vols, mounts = volumes(spec, shm)
    containers[0].setdefault("volumeMounts", []).extend(mounts)
    pod: dict[str, Any] = {"containers": containers, "terminationGracePeriodSeconds": grace}
    if vols:
        pod["volumes"] = vols
    if pool is not None:
        pod["nodeSelector"] = dict(pool.node_selector)
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return pod
