"""Run the containers of generated manifests as local processes, as close to what the kubelet would
start as one host allows: each container's command, args and env (with its ConfigMaps), the engine
volume mapped to a local folder, every container port mapped to a free local port (so Services and
probes resolve to loopback), GPU requests ignored. For the Dynamo operator's part, the discovery
settings it injects are replaced by file discovery in a shared folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from trtllm_mixquant.ports import free_port

PROGRAMS = {"python3": [sys.executable], "trtllm-mixquant": [sys.executable, "-m", "trtllm_mixquant.cli"]}
PORT_FLAGS = ("--port", "--http-port")


@dataclass
class Container:
    name: str
    spec: dict  # the container as the manifest writes it
    replica: int = 0
    ports: dict[int, int] = field(default_factory=dict)  # container port -> local port
    process: subprocess.Popen | None = None

    def url(self, port: int | str) -> str:
        if isinstance(port, str):
            port = next(p["containerPort"] for p in self.spec.get("ports", []) if p["name"] == port)
        return f"http://127.0.0.1:{self.ports[port]}"


def pod_containers(docs: list[dict]) -> list[tuple[str, int, dict, dict]]:
    """(name, replicas, pod spec, pod labels) of every Deployment and DynamoGraphDeployment component."""
    pods = []
    for doc in docs:
        if doc["kind"] == "Deployment":
            template = doc["spec"]["template"]
            pods.append((doc["metadata"]["name"], doc["spec"]["replicas"], template["spec"], template["metadata"]))
        elif doc["kind"] == "DynamoGraphDeployment":
            for c in doc["spec"]["components"]:
                pods.append((c["name"], c["replicas"], c["podTemplate"]["spec"], c["podTemplate"]["metadata"]))
    return pods


class LocalPods:
    def __init__(self, docs: list[dict], mounts: dict[str, Path], folder: Path):
        self.docs, self.mounts, self.folder = docs, mounts, folder
        self.config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
        self.containers: list[Container] = []

    def environment(self, spec: dict, ports: dict[int, int]) -> dict[str, str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for source in spec.get("envFrom", []):
            env.update(self.config_maps[source["configMapRef"]["name"]])
        env.update({e["name"]: e["value"] for e in spec.get("env", [])})
        if "DYN_SYSTEM_PORT" in env:
            env["DYN_SYSTEM_PORT"] = str(ports[int(env["DYN_SYSTEM_PORT"])])
        # what Dynamo's operator would set, for one host: file discovery, loopback
        env.update({"DYN_DISCOVERY_BACKEND": "file", "DYN_FILE_KV": str(self.folder / "discovery"),
                    "DYN_REQUEST_PLANE": "tcp", "DYN_EVENT_PLANE": "zmq", "DYN_TCP_RPC_HOST": "127.0.0.1",
                    "DYN_TCP_RESPONSE_STREAM_HOST": "127.0.0.1", "DYN_EVENT_PLANE_HOST": "127.0.0.1",
                    "DYN_HTTP_HOST": "127.0.0.1"})
        return env

    def command(self, spec: dict, ports: dict[int, int]) -> list[str]:
        words = list(spec.get("command", [])) + list(spec.get("args", []))
        words = PROGRAMS.get(words[0], [words[0]]) + words[1:]
        for mount in spec.get("volumeMounts", []):
            local = self.mounts.get(mount["name"])
            if local is not None:
                words = [w.replace(mount["mountPath"], str(local), 1) if w.startswith(mount["mountPath"]) else w
                         for w in words]
        for i, word in enumerate(words[:-1]):
            if word in PORT_FLAGS:
                words[i + 1] = str(ports[int(words[i + 1])])
            if word == "--host" and words[i + 1] == "0.0.0.0":
                words[i + 1] = "127.0.0.1"
        return words

    def start(self) -> LocalPods:
        for name, replicas, pod, _ in pod_containers(self.docs):
            for replica in range(replicas):
                for spec in pod["containers"]:
                    ports = {p["containerPort"]: free_port(below=32768) for p in spec.get("ports", [])}
                    for e in spec.get("env", []):  # a port only the environment names (Dynamo's system port)
                        if e["name"] == "DYN_SYSTEM_PORT":
                            ports.setdefault(int(e["value"]), free_port(below=32768))
                    c = Container(f"{name}-{replica}-{spec['name']}", spec, replica, ports)
                    with open(self.folder / f"{c.name}.log", "wb") as log:  # the child keeps its own copy
                        c.process = subprocess.Popen(self.command(spec, ports), env=self.environment(spec, ports),
                                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                    self.containers.append(c)
        return self

    def wait_ready(self, timeout: float = 240.0) -> None:
        """Until every container's readiness probe (HTTP GET, as the manifest writes it) answers 200."""
        deadline = time.monotonic() + timeout
        for c in self.containers:
            probe = c.spec.get("readinessProbe", {}).get("httpGet")
            while probe is not None:
                assert c.process.poll() is None, f"{c.name} exited; see {self.folder}/{c.name}.log"
                try:
                    with urllib.request.urlopen(c.url(probe["port"]) + probe["path"], timeout=5) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, f"{c.name} never got ready; see {self.folder}/{c.name}.log"
                time.sleep(0.3)

    def service_url(self, name: str) -> str:
        """A Service of the manifests, resolved to the local port of the first container it selects."""
        (service,) = [d for d in self.docs if d["kind"] == "Service" and d["metadata"]["name"] == name]
        port = service["spec"]["ports"][0]["targetPort"]
        selector = service["spec"]["selector"]
        names = {n for n, _, _, meta in pod_containers(self.docs) if selector.items() <= meta["labels"].items()}
        return next(c for c in self.containers if c.name.rsplit("-", 2)[0] in names).url(port)

    def container(self, prefix: str) -> Container:
        return next(c for c in self.containers if c.name.startswith(prefix))

    def stop(self) -> None:
        for c in self.containers:
            if c.process.poll() is None:
                os.killpg(c.process.pid, signal.SIGTERM)
        for c in self.containers:
            try:
                c.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(c.process.pid, signal.SIGKILL)
