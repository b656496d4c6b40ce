"""Real servers on loopback: one in a thread of the test process (random tiny engines, disaggregated,
fp32, an API key), reached with the official `openai` client."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from trtllm_mixquant.ports import free_port

API_KEY = "test-key"


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
    """(status, text) of one plain HTTP request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, {"Content-Type": "application/json", **(headers or {})}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def wait_healthy(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while http("GET", url + "/health")[0] != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not become healthy in {timeout:g} s")
        time.sleep(0.2)


def metric(url: str, line_prefix: str, api_key: str = API_KEY) -> float:
    """The value of the first /metrics line that starts with `line_prefix` (0 if none)."""
    text = http("GET", url + "/metrics", headers={"Authorization": f"Bearer {api_key}"})[1]
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_prefix)), 0.0)


@dataclass
class RunningServer:
    url: str
    model: str
    engine_dir: object
    statuses_while_starting: tuple[int, int]

    def client(self, api_key: str = API_KEY, **kw):
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=120, **kw)


@pytest.fixture(scope="session")
def server(tiny_engines):
    """The random tiny engines behind a disaggregated server (1 context + 1 generation worker, fp32)."""
    import uvicorn

    from trtllm_mixquant.disagg.config import OrchestratorConfig
    from trtllm_mixquant.engine.config import EngineConfig
    from trtllm_mixquant.server.app import create_app
    from trtllm_mixquant.server.config import ServerConfig

    engines = tiny_engines("qwen3", "nvfp4")
    engine = EngineConfig(engines, dtype="float32", device="cpu")
    settings = ServerConfig(OrchestratorConfig(engine, devices=("cpu",)), port=free_port(), api_key=API_KEY)
    uv = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{settings.port}"
    starting = (http("GET", url + "/health")[0],
                http("POST", url + "/v1/completions", {"model": settings.model_name, "prompt": "a"},
                     {"Authorization": f"Bearer {API_KEY}"})[0])
    wait_healthy(url)
    yield RunningServer(url, settings.model_name, engines, starting)
    uv.should_exit = True
    thread.join(60)


@pytest.fixture(scope="session")
def colocated(tiny_engines):
    """The same tiny engines served from this process by a LocalEngine (colocated topology, where the
    quantized mode runs too), under two aliases (`--served-model-name tiny org/tiny-agent`)."""
    import uvicorn

    from trtllm_mixquant.disagg.config import OrchestratorConfig
    from trtllm_mixquant.engine.config import EngineConfig
    from trtllm_mixquant.frontend.local_engine import LocalEngine
    from trtllm_mixquant.server.app import create_app
    from trtllm_mixquant.server.config import ServerConfig

    engines = tiny_engines("qwen3", "nvfp4")
    engine = EngineConfig(engines, dtype="float32", device="cpu")
    config = ServerConfig(OrchestratorConfig(engine), port=free_port(), api_key=API_KEY,
                          served_model_names=("tiny", "org/tiny-agent"))
    uv = uvicorn.Server(uvicorn.Config(create_app(config, engine=LocalEngine(engine)), port=config.port,
                                       log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    wait_healthy(url)
    yield RunningServer(url, "tiny", engines, (0, 0))
    uv.should_exit = True
    thread.join(30)
