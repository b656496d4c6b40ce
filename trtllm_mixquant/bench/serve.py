"""Load test of a running server: requests per second, latency and time to first token at several concurrencies.

    python -m trtllm_mixquant.bench.serve --url http://127.0.0.1:8000 --concurrency 1,16 --requests 64

Each request streams a completion of exactly `--max-tokens` tokens (`ignore_eos`) for a distinct
prompt of `--prompt-words` words; `--concurrency` clients send `--requests` requests in all.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import requests
from trtllm_mixquant.help_format import HelpFormatter

WORDS = ("agent tool call result context cache prefill decode token model server request stream latency "
         "quantized precise block layer weight").split()


@dataclass
class Sample:
    latency: float
    ttft: float
    completion_tokens: int
    itl: float  # mean seconds between the streamed chunks after the first


def prompt(i: int, words: int) -> str:
    return f"request {i}: " + " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(words))


def one_request(url: str, headers: dict, body: dict) -> Sample:
    start = time.perf_counter()
    ttft, tokens, arrivals = None, 0, []
    with requests.post(url + "/v1/completions", json=body, headers=headers, stream=True, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if chunk["choices"] and chunk["choices"][0].get("text"):
                arrivals.append(time.perf_counter())
            if ttft is None and chunk["choices"]:
                ttft = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    itl = (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1) if len(arrivals) > 1 else 0.0
    return Sample(time.perf_counter() - start, ttft or 0.0, tokens, itl)


def run(url: str, headers: dict, base: dict, concurrency: int, n: int, words: int) -> dict:
    """`n` streamed requests from `concurrency` clients: rates, latency and TTFT percentiles, median ITL."""
    bodies = [{**base, "prompt": prompt(i + 1000 * concurrency, words)} for i in range(n)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        samples = list(pool.map(lambda b: one_request(url, headers, b), bodies))
    wall = time.perf_counter() - start
    lat, ttft = np.array([s.latency for s in samples]), np.array([s.ttft for s in samples])
    return {"concurrency": concurrency, "requests": n, "rps": n / wall,
            "tokens_per_s": sum(s.completion_tokens for s in samples) / wall,
            "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99)),
            "ttft_p50_s": float(np.percentile(ttft, 50)), "ttft_p99_s": float(np.percentile(ttft, 99)),
            "itl_p50_s": float(np.percentile([s.itl for s in samples], 50))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant bench serve", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server (without /v1)")
    p.add_argument("--model", default=None, help="default: the first model the server lists")
    p.add_argument("--api-key", default=None)
    p.add_argument("--concurrency", default="1,16", help="comma-separated numbers of concurrent clients")
    p.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    p.add_argument("--prompt-words", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--mode", choices=("mixquant", "bf16", "quantized"), default=None)
    args = p.parse_args(argv)
    url = args.url.rstrip("/")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    model = args.model or requests.get(url + "/v1/models", headers=headers, timeout=30).json()["data"][0]["id"]
    base = {"model": model, "max_tokens": args.max_tokens, "temperature": 0, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    if args.mode:
        base["mixquant"] = {"mode": args.mode}
    run(url, headers, base, 1, 2, args.prompt_words)  # warm-up
    print(f"{'clients':>7} {'requests':>8} {'req/s':>7} {'tok/s':>7} {'p50 s':>7} {'p99 s':>7} {'ttft p50':>8} "
          f"{'ttft p99':>8} {'itl p50':>8}")
    for c in (int(x) for x in args.concurrency.split(",")):
        r = run(url, headers, base, c, args.requests, args.prompt_words)
        print(f"{c:>7} {r['requests']:>8} {r['rps']:>7.2f} {r['tokens_per_s']:>7.1f} {r['p50_s']:>7.3f} "
              f"{r['p99_s']:>7.3f} {r['ttft_p50_s']:>8.3f} {r['ttft_p99_s']:>8.3f} {r['itl_p50_s']:>8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
