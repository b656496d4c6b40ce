"""Triton Inference Server against the engine called directly, in the same run: startup time, and
per-request latency and time to first token for the same sequential requests (greedy, exactly
`--max-tokens` tokens each). Direct: the in-process `LocalEngine`; Triton: `generate_stream` over
HTTP to the `mixquant` model of a tritonserver started here.

    trtllm-mixquant bench triton [ENGINE_DIR] --requests 20 --max-tokens 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from pathlib import Path

from trtllm_mixquant.generate_cli import check_engine_dir, default_engine_dir
from trtllm_mixquant.help_format import HelpFormatter

PROMPT = "def fibonacci(n):\n    "


def direct(engine_dir: Path, n: int, max_tokens: int) -> tuple[float, list[tuple[float, float]]]:
    from trtllm_mixquant.engine.config import EngineConfig
    from trtllm_mixquant.engine.sampling import SamplingParams
    from trtllm_mixquant.frontend.async_engine import GenerateRequest
    from trtllm_mixquant.frontend.local_engine import LocalEngine
    from trtllm_mixquant.frontend.loop_thread import LoopThread

    start = time.perf_counter()
    engine, loop = LocalEngine(EngineConfig(engine_dir)), LoopThread()
    loop.run(engine.start())
    startup = time.perf_counter() - start

    async def one() -> tuple[float, float]:
        t0, first = time.perf_counter(), None
        ids = engine.codec.encode(PROMPT)
        async for _ in await engine.submit(GenerateRequest(ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True))):
            first = first or time.perf_counter() - t0
        return time.perf_counter() - t0, first
    samples = [loop.run(one()) for _ in range(n + 2)][2:]  # two warm-up requests
    loop.run(engine.shutdown())
    return startup, samples


def triton(engine_dir: Path, n: int, max_tokens: int) -> tuple[float, list[tuple[float, float]]]:
    import socket

    from trtllm_mixquant.triton.repository import write_repository
    from trtllm_mixquant.triton.server import Ports, cache_dir, install_server, prepare_env, start_server, wait_ready

    files, env = install_server(), prepare_env()
    repository = write_repository(engine_dir, cache_dir() / "repositories" / "bench", {}, env, {"mixquant": True})
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    process = start_server(files, repository, Ports(*ports), log=open(repository / "tritonserver.log", "w"))
    url = f"http://127.0.0.1:{ports[0]}"
    try:
        startup = wait_ready(url, process)
        body = json.dumps({"text_input": PROMPT, "max_tokens": max_tokens, "ignore_eos": True, "stream": True}).encode()

        def one() -> tuple[float, float]:
            t0, first = time.perf_counter(), None
            request = urllib.request.Request(f"{url}/v2/models/mixquant/generate_stream", body,
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as r:
                for line in r:
                    if line.startswith(b"data: "):
                        first = first or time.perf_counter() - t0
            return time.perf_counter() - t0, first
        samples = [one() for _ in range(n + 2)][2:]
    finally:
        process.terminate()
        process.wait(60)
    return startup, samples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant bench triton", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("engine_dir", nargs="?", type=Path, default=default_engine_dir())
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--max-tokens", type=int, default=32)
    args = p.parse_args(argv)
    check_engine_dir(args.engine_dir)
    rows = {"direct (LocalEngine)": direct(args.engine_dir, args.requests, args.max_tokens),
            "Triton generate_stream": triton(args.engine_dir, args.requests, args.max_tokens)}
    base = statistics.median(s[0] for s in rows["direct (LocalEngine)"][1])
    print(f"\n{args.requests} sequential requests of {args.max_tokens} tokens, {args.engine_dir}")
    print(f"{'':24} {'startup s':>9} {'latency p50 ms':>14} {'TTFT p50 ms':>11} {'latency vs direct':>17}")
    for name, (startup, samples) in rows.items():
        latency = statistics.median(s[0] for s in samples)
        print(f"{name:24} {startup:>9.1f} {latency * 1e3:>14.1f} {statistics.median(s[1] for s in samples) * 1e3:>11.1f} "
              f"{latency / base:>16.2f}x")
    return 0
