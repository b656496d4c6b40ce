"""The paper's benchmarks on local files: MATH500, AIME 2024/2025, GSM8K, LongBench v2 and BFCL-style
function calling, run against the engine or any OpenAI-compatible endpoint, with bootstrap intervals.

    from trtllm_mixquant import SamplingParams

    items = load_benchmark("math500", "data/math500.jsonl")
    result = run_benchmark(items, OpenAIEndpointClient("http://localhost:8000/v1"),
                           SamplingParams(max_tokens=32768, temperature=0.6, top_p=0.95), concurrency=32)
    print(result.accuracy)  # 71.20 [67.20, 75.20] (95% CI, n=500, seed=0)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from trtllm_mixquant.eval.benchmarks.bfcl import read_bfcl
from trtllm_mixquant.eval.benchmarks.clients import CallableClient, Client
from trtllm_mixquant.eval.benchmarks.core import BenchmarkItem, Completion, DatasetError, Grade
from trtllm_mixquant.eval.benchmarks.grading import grade
from trtllm_mixquant.eval.benchmarks.longbench import TokenCodec, read_longbench_v2
from trtllm_mixquant.eval.benchmarks.math_sets import read_aime, read_gsm8k, read_math500
from trtllm_mixquant.eval.benchmarks.openai_client import OpenAIEndpointClient
from trtllm_mixquant.eval.benchmarks.result import BenchmarkResult, ItemRecord, compare
from trtllm_mixquant.eval.benchmarks.runner import run_benchmark
from trtllm_mixquant.eval.benchmarks.stats import Estimate, bootstrap_mean, paired_bootstrap_difference

READERS: dict[str, Callable[..., list[BenchmarkItem]]] = {
    "math500": read_math500,
    "aime2024": lambda path: read_aime(path, "aime2024"),
    "aime2025": lambda path: read_aime(path, "aime2025"),
    "gsm8k": read_gsm8k,
    "longbench_v2": read_longbench_v2,
    "bfcl": read_bfcl,
}


def load_benchmark(name: str, path: str | Path, **options: Any) -> list[BenchmarkItem]:
    """Items of benchmark `name` from a local file; options go to its reader (LongBench v2: codec,
    max_prompt_tokens; BFCL: answers_path)."""
    if name not in READERS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(READERS)}")
    return READERS[name](path, **options)


__all__ = [
    "READERS", "BenchmarkItem", "BenchmarkResult", "CallableClient", "Client", "Completion", "DatasetError",
    "Estimate", "Grade", "ItemRecord", "OpenAIEndpointClient", "TokenCodec", "bootstrap_mean", "compare", "grade",
    "load_benchmark", "paired_bootstrap_difference", "run_benchmark",
]
