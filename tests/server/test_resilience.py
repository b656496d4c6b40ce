"""A server that one disconnect or one dead worker cannot take down (disaggregated, 1 context + 1
generation worker, a 64-block KV pool, real worker processes on CPU):
- hundreds of streams abandoned at random points leave every block exactly where it was;
- SIGKILL of the context worker, then of the generation worker, under load: every request ends
  (served, or failed cleanly), the survivor keeps running, the dead one is replaced and /health
  comes back; afterwards a request that needs the whole pool is served.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.server.conftest import http, metric, wait_healthy
from trtllm_mixquant.ports import free_port

pytestmark = pytest.mark.slow  # real servers or worker processes

pytest.importorskip("nixl")
BLOCKS = 64  # x 32 tokens = 2048, the tiny engines' maximum sequence length
WORDS = "agent tool call result context cache prefill decode token model".split()


@pytest.fixture(scope="module")
def served(tiny_engines):
    import uvicorn

    from trtllm_mixquant.disagg.config import OrchestratorConfig
    from trtllm_mixquant.engine.config import EngineConfig
    from trtllm_mixquant.server.app import create_app
    from trtllm_mixquant.server.config import ServerConfig

    engines = tiny_engines("qwen3", "nvfp4")
    engine = EngineConfig(engines, dtype="float32", device="cpu", kv_cache_blocks=BLOCKS)
    config = ServerConfig(OrchestratorConfig(engine, devices=("cpu",)), port=free_port())
    app = create_app(config)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    wait_healthy(url)
    yield url, config.model_name, app.state.server.engine
    uv.should_exit = True
    thread.join(60)


def prompt(i: int) -> str:
    return f"request {i}: " + " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(8 + i % 20))


def blocks(url: str, worker: str, kind: str) -> float:
    return metric(url, f'mixquant_kv_blocks{{worker="{worker}",kind="{kind}"}}')


def wait_idle(url: str, orchestrator, timeout: float = 60.0) -> float:
    """Seconds until nothing is in flight and both workers' pools are back to all free; then the
    workers' own ownership checks must pass."""
    start = time.monotonic()
    while True:
        idle = metric(url, "mixquant_requests_in_flight ") == 0 and all(
            blocks(url, w, "free") == BLOCKS and blocks(url, w, "used") == 0 and blocks(url, w, "reserved") == 0
            for w in ("context0", "generation0"))
        if idle:
            break
        assert time.monotonic() - start < timeout, http("GET", url + "/metrics")[1]
        time.sleep(0.1)
    checks = asyncio.run_coroutine_threadsafe(orchestrator.check_blocks(), orchestrator.loop).result(30)
    assert checks == {"context0": None, "generation0": None}
    return time.monotonic() - start


def pool_filling_request(url: str, model: str) -> None:
    """A prompt plus max_tokens of exactly 2048 tokens: it needs every block of the generation worker."""
    body = {"model": model, "prompt": [5] * 48, "max_tokens": BLOCKS * 32 - 48, "ignore_eos": True}
    status, text = http("POST", url + "/v1/completions", body)
    assert status == 200 and json.loads(text)["usage"]["completion_tokens"] == BLOCKS * 32 - 48


def abandon(url: str, model: str, i: int, rng: random.Random) -> str:
    """Start a streamed completion and walk away at a random point."""
    body = json.dumps({"model": model, "prompt": prompt(i), "max_tokens": rng.randint(5, 300), "stream": True,
                       "ignore_eos": True}).encode()
    how = rng.choice(("before reading", "after the head", "after one chunk", "after a few chunks", "reset"))
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        if how == "before reading":
            return how
        seen = b""
        wanted = {"after the head": b"\r\n\r\n", "after one chunk": b"data:"}.get(how, b"data:" * 3)
        while seen.count(wanted[:5]) < (3 if how in ("after a few chunks", "reset") else 1) and b"[DONE]" not in seen:
            chunk = s.recv(4096)
            if not chunk:
                break
            seen += chunk
        if how == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
    return how


def test_a_disconnect_storm_leaks_no_block(served):
    url, model, orchestrator = served
    rng = random.Random(0)
    start = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        kinds = list(pool.map(lambda i: abandon(url, model, i, random.Random(rng.random())), range(300)))
    storm = time.monotonic() - start
    assert len(set(kinds)) == 5
    settled = wait_idle(url, orchestrator)
    print(f"\n300 abandoned streams in {storm:.1f} s; idle again {settled:.2f} s later, 0 blocks leaked")
    pool_filling_request(url, model)
    wait_idle(url, orchestrator)


def load(url: str, model: str, n: int, results: list) -> None:
    """n streamed requests, 4 at a time; each ends served ("ok") or with an error, never hanging."""
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)

    def one(i: int) -> str:
        try:
            stream = client.completions.create(model=model, prompt=prompt(i), max_tokens=120, stream=True,
                                               extra_body={"ignore_eos": True})
            text = "".join(c.choices[0].text for c in stream if c.choices)
            return "ok" if text else "empty"
        except openai.APIStatusError as e:
            return f"http {e.status_code}"
        except openai.APIError as e:  # an error event in the stream
            return "stream error: " + str(e)[:60]
    with ThreadPoolExecutor(4) as pool:
        results.extend(pool.map(one, range(n)))


@pytest.mark.parametrize("role", ["context", "generation"])
def test_sigkill_of_a_worker_under_load(served, role):
    url, model, orchestrator = served
    victim, survivor = (orchestrator.slots[n] for n in ((f"{role}0", "generation0" if role == "context" else "context0")))
    survivor_pid = survivor.process.processes[0].pid
    restarts = metric(url, "mixquant_worker_restarts_total ")
    results: list[str] = []
    loader = threading.Thread(target=load, args=(url, model, 24, results))
    loader.start()
    time.sleep(1.5)  # requests in every stage
    os.kill(victim.process.processes[0].pid, signal.SIGKILL)
    killed = time.monotonic()
    while http("GET", url + "/health")[0] == 200 and time.monotonic() - killed < 5:
        time.sleep(0.05)
    while json.loads(http("GET", url + "/health")[1]).get("status") != "ok":
        assert time.monotonic() - killed < 120, http("GET", url + "/health")
        time.sleep(0.1)
    recovered = time.monotonic() - killed
    loader.join(180)
    assert not loader.is_alive() and len(results) == 24, results  # nothing hung
    assert all(r == "ok" or r.startswith(("http 503", "stream error", "http 500")) for r in results), results
    assert survivor.process.processes[0].pid == survivor_pid and survivor.process.alive()
    assert metric(url, "mixquant_worker_restarts_total ") == restarts + 1
    print(f"\nSIGKILL {role}0: /health back to ok after {recovered:.1f} s; of 24 requests "
          f"{results.count('ok')} served, {len(results) - results.count('ok')} failed cleanly: "
          f"{sorted(set(results) - {'ok'})}")
    wait_idle(url, orchestrator)
    pool_filling_request(url, model)
    wait_idle(url, orchestrator)
