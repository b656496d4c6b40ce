"""A whole Dynamo graph on one host: Dynamo's own frontend and our context and generation workers,
each a process of its own started as a pod would start it, meeting through file discovery in a
folder of the graph's own, on loopback (no etcd, no NATS). For tests, benchmarks and a first try.

    with LocalGraph(Path("engines/tiny-agent"), Path("/tmp/graph")) as graph:
        graph.wait_ready()
        openai.OpenAI(base_url=graph.url + "/v1", api_key="unused") ...
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from trtllm_mixquant.ports import free_port


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def serving_workers(frontend_url: str, roles: tuple[str, ...] = ("context", "generation")) -> dict[str, int]:
    """Workers of each role whose `generate` endpoint the frontend at `frontend_url` lists in /health.

    A worker registers other endpoints too (a context worker's KV query source), which may show up
    first: only `generate` means the frontend can send that worker requests."""
    status, text = get(frontend_url + "/health")
    counts = dict.fromkeys(roles, 0)
    if status == 200:
        for instance in json.loads(text).get("instances", []):
            if instance.get("endpoint") == "generate" and instance.get("component") in counts:
                counts[instance["component"]] += 1
    return counts


def routable_models(frontend_url: str, prefill: bool = True) -> set[str]:
    """Models the frontend at `frontend_url` can route a request for now: its `model_ready` gauge is 1
    and, with `prefill`, its prefill router is up (the router's queue gauge for `worker_type="prefill"`).

    /health lists a worker's endpoint some 150 ms (idle machine) before that: a request in between is
    answered 404, then 503 ("not ready to serve requests yet", then "Service temporarily unavailable")."""
    ready, prefilling = set(), set()
    for line in get(frontend_url + "/metrics")[1].splitlines():
        if line.startswith("dynamo_frontend_model_ready{") and line.endswith(" 1"):
            ready.add(line.split('model="')[1].split('"')[0])
        elif line.startswith("dynamo_frontend_router_queue_pending_requests{") and 'worker_type="prefill"' in line:
            prefilling.add(line.split('model="')[1].split('"')[0])
    return ready & prefilling if prefill else ready


@dataclass
class GraphProcess:
    name: str  # frontend, context0, generation1, ...
    role: str  # frontend, context or generation
    popen: subprocess.Popen
    log: Path
    system_port: int | None = None  # a worker's Dynamo system port: /health, /live, /metrics

    def alive(self) -> bool:
        return self.popen.poll() is None

    def metrics(self) -> dict[str, float]:
        """This worker's `mixquant_*` counters and gauges, summed over their labels but `outcome`/`state`."""
        values: dict[str, float] = {}
        for line in get(f"http://127.0.0.1:{self.system_port}/metrics")[1].splitlines():
            if not line.startswith("mixquant_") or "_created" in line.split("{")[0]:
                continue
            name, value = line.rsplit(" ", 1)
            base = name.split("{")[0]
            for label in ("outcome", "state"):
                if f'{label}="' in name:
                    base += ":" + name.split(f'{label}="')[1].split('"')[0]
            values[base] = values.get(base, 0.0) + float(value)
        return values


class LocalGraph:
    """worker_args: extra `trtllm-mixquant worker` options for every worker (e.g. --dtype float32);
    extra_env: environment for every process (e.g. OMP_NUM_THREADS when they share few cores)."""

    def __init__(self, engine_dir: Path, folder: Path, context_workers: int = 1, generation_workers: int = 1,
                 router_mode: str = "kv", worker_args: tuple[str, ...] = (), http_port: int | None = None,
                 extra_env: dict[str, str] | None = None):
        self.engine_dir, self.folder = Path(engine_dir), Path(folder)
        self.extra_env = extra_env or {}
        self.counts = {"context": context_workers, "generation": generation_workers}
        self.router_mode, self.worker_args = router_mode, tuple(worker_args)
        self.http_port = http_port or free_port()
        self.processes: dict[str, GraphProcess] = {}
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        """One host, no etcd or NATS: file discovery in the graph's folder, loopback everywhere."""
        loopback = {k: "127.0.0.1" for k in ("DYN_TCP_RPC_HOST", "DYN_TCP_RESPONSE_STREAM_HOST",
                                             "DYN_EVENT_PLANE_HOST", "DYN_HTTP_HOST")}
        return {**os.environ, **loopback, "DYN_DISCOVERY_BACKEND": "file", "DYN_FILE_KV": str(self.folder / "kv"),
                "DYN_REQUEST_PLANE": "tcp", "DYN_EVENT_PLANE": "zmq", **self.extra_env}

    def _spawn(self, name: str, role: str, command: list[str], system_port: int | None = None) -> GraphProcess:
        env = self.env()
        if system_port is not None:
            env["DYN_SYSTEM_PORT"] = str(system_port)
        log = self.folder / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = GraphProcess(name, role, popen, log, system_port)
        return self.processes[name]

    def start(self) -> LocalGraph:
        self._spawn("frontend", "frontend", [sys.executable, "-m", "dynamo.frontend", "--http-host", "127.0.0.1",
                                             "--http-port", str(self.http_port), "--router-mode", self.router_mode])
        for role, count in self.counts.items():
            for i in range(count):
                self.start_worker(f"{role}{i}")
        return self

    def start_worker(self, name: str) -> GraphProcess:
        """Start (or restart) worker `name` ("context0", "generation1", ...)."""
        role = name.rstrip("0123456789")
        command = [sys.executable, "-m", "trtllm_mixquant.cli", "worker", "--role", role, str(self.engine_dir),
                   "--discovery-backend", "file", *self.worker_args]
        return self._spawn(name, role, command, free_port(below=32768))  # DYN_SYSTEM_PORT is an i16

    def workers(self, role: str) -> list[GraphProcess]:
        return [p for p in self.processes.values() if p.role == role]

    def registered(self) -> dict[str, int]:
        """Workers of each role the frontend currently knows."""
        return serving_workers(self.url, tuple(self.counts))

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Wait until every live worker serves, the frontend knows them all and can route a request
        through them (prefill router included, with context workers); returns the seconds waited."""
        start = time.monotonic()
        while True:
            dead = [p.name for p in self.processes.values() if not p.alive()]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; see {self.folder}/*.log")
            want = {role: len(self.workers(role)) for role in self.counts}
            if (self.registered() == want and routable_models(self.url, prefill=want.get("context", 0) > 0)
                    and all(get(f"http://127.0.0.1:{p.system_port}/health")[0] == 200
                            for role in self.counts for p in self.workers(role))):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"the graph was not ready in {timeout:g} s (frontend knows {self.registered()}, "
                                   f"want {want}); see {self.folder}/*.log")
            time.sleep(0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        if process.alive():
            os.killpg(process.popen.pid, sig)
        process.popen.wait(60)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.alive():
                os.killpg(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.popen.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait(10)

    def __enter__(self) -> LocalGraph:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
