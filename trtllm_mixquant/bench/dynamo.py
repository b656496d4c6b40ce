"""The same engine pair served two ways on this host, in one run: `trtllm-mixquant serve` (our
orchestrator, one context and one generation worker) and NVIDIA Dynamo (its frontend, our context
worker as a prefill worker and our generation worker as a decode worker, three processes, file
discovery). Startup time, then TTFT, inter-token latency and throughput of the same streamed
requests (`bench serve`'s load), with Dynamo's ratio to `serve`.

    trtllm-mixquant bench dynamo engines/tiny-agent --concurrency 1,8 --requests 32
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trtllm_mixquant.bench.serve import run
from trtllm_mixquant.dynamo.local import LocalGraph, get
from trtllm_mixquant.help_format import HelpFormatter
from trtllm_mixquant.ports import free_port

KEYS = ("rps", "tokens_per_s", "ttft_p50_s", "ttft_p99_s", "itl_p50_s", "p50_s")


def load(url: str, model: str, args, extra: dict) -> list[dict]:
    base = {"model": model, "max_tokens": args.max_tokens, "temperature": 0, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}, **extra}
    run(url, {}, base, 1, 2, args.prompt_words)  # warm-up
    return [run(url, {}, base, c, args.requests, args.prompt_words) for c in args.concurrency]


def with_serve(args) -> tuple[float, list[dict]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    log = open(Path(args.folder) / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "trtllm_mixquant.cli", "serve", str(args.engine_dir), "--port",
                             str(port), *args.worker_args], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        while get(url + "/health")[0] != 200:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited; see {args.folder}/serve.log")
            time.sleep(0.1)
        ready = time.perf_counter() - start
        mode = {"mixquant": {"mode": args.mode}}
        return ready, load(url, args.engine_dir.resolve().name, args, mode)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()


def with_dynamo(args) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    with LocalGraph(args.engine_dir, Path(args.folder) / "dynamo", router_mode="kv",
                    worker_args=tuple(args.worker_args)) as graph:
        graph.wait_ready()
        ready = time.perf_counter() - start
        mode = {"nvext": {"annotations": [f"mode:{args.mode}"]}}
        return ready, load(graph.url, args.engine_dir.resolve().name, args, mode)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant bench dynamo", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("engine_dir", type=Path, help="build.py output folder")
    p.add_argument("--concurrency", default="1,8", help="comma-separated numbers of concurrent clients")
    p.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    p.add_argument("--prompt-words", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--mode", choices=("mixquant", "bf16"), default="mixquant")
    p.add_argument("--worker-args", default="", help="options for every worker, e.g. '--device cpu --dtype float32'")
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.worker_args = args.worker_args.split()
    with tempfile.TemporaryDirectory(prefix="bench-dynamo-") as folder:
        args.folder = folder
        results = {"serve": with_serve(args), "dynamo": with_dynamo(args)}
    print(f"{args.engine_dir} ({args.mode}), {args.requests} requests of {args.prompt_words} words -> "
          f"{args.max_tokens} tokens per concurrency level; one context and one generation worker each\n")
    print(f"{'':>8} {'startup s':>9}")
    for name, (ready, _) in results.items():
        print(f"{name:>8} {ready:>9.1f}")
    print(f"\n{'clients':>7} {'server':>7} {'req/s':>7} {'tok/s':>7} {'ttft p50':>9} {'ttft p99':>9} {'itl p50':>9} "
          f"{'p50 s':>7}")
    for i, c in enumerate(args.concurrency):
        rows = {name: r[i] for name, (_, r) in results.items()}
        for name, r in rows.items():
            print(f"{c:>7} {name:>7} {r['rps']:>7.2f} {r['tokens_per_s']:>7.1f} {r['ttft_p50_s'] * 1e3:>7.1f}ms "
                  f"{r['ttft_p99_s'] * 1e3:>7.1f}ms {r['itl_p50_s'] * 1e3:>7.2f}ms {r['p50_s']:>7.3f}")
        ratio = {k: rows["dynamo"][k] / rows["serve"][k] if rows["serve"][k] else float("nan") for k in KEYS}
        print(f"{c:>7} {'ratio':>7} {ratio['rps']:>7.2f} {ratio['tokens_per_s']:>7.2f} {ratio['ttft_p50_s']:>9.2f} "
              f"{ratio['ttft_p99_s']:>9.2f} {ratio['itl_p50_s']:>9.2f} {ratio['p50_s']:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
