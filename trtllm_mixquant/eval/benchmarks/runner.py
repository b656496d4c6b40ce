"""Run benchmark items through a client, concurrently, grade each reply, and score the run."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, replace

from tqdm import tqdm

from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.eval.benchmarks.clients import Client
from trtllm_mixquant.eval.benchmarks.core import BenchmarkItem
from trtllm_mixquant.eval.benchmarks.grading import grade
from trtllm_mixquant.eval.benchmarks.result import BenchmarkResult, ItemRecord
from trtllm_mixquant.eval.benchmarks.stats import DEFAULT_RESAMPLES, bootstrap_mean

log = logging.getLogger(__name__)


def run_benchmark(items: list[BenchmarkItem], client: Client, params: SamplingParams, concurrency: int = 1,
                  seed: int = 0, progress: bool = True, name: str = "benchmark",
                  resamples: int = DEFAULT_RESAMPLES) -> BenchmarkResult:
    """Send every item with up to `concurrency` requests in flight; records keep the items' order.

    Item i is sampled with seed `seed + i` (so a sampled run repeats whatever the concurrency), and
    the bootstrap interval of the accuracy uses `seed` too. A failed request is recorded with its
    error and counts as wrong.
    """
    if not items:
        raise ValueError("no items to run")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1 (got {concurrency})")
    records: list[ItemRecord | None] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=concurrency) as pool, \
            tqdm(total=len(items), desc=name, unit="item", disable=not progress) as bar:
        futures = {pool.submit(_run_item, item, client, replace(params, seed=seed + i)): i
                   for i, item in enumerate(items)}
        num_correct = 0
        for future in as_completed(futures):
            record = records[futures[future]] = future.result()
            num_correct += record.correct
            bar.update()
            bar.set_postfix(correct=num_correct)
    done = [r for r in records if r is not None]
    accuracy = bootstrap_mean([float(r.correct) for r in done], seed, resamples)
    result = BenchmarkResult(name, done, accuracy, {**asdict(params), "seed": seed, "concurrency": concurrency})
    if result.num_errors:
        log.warning("%s: %d of %d requests failed and count as wrong", name, result.num_errors, len(done))
    return result


def _run_item(item: BenchmarkItem, client: Client, params: SamplingParams) -> ItemRecord:
    try:
        completion = client.complete(item.messages, item.tools, params)
    except Exception as e:  # one failed request must not lose the run: it is recorded and counted
        return ItemRecord(item.id, "", None, False, "request failed", seed=params.seed,
                          error=f"{type(e).__name__}: {e}", meta=item.meta)
    verdict = grade(item, completion)
    return ItemRecord(item.id, completion.text, verdict.extracted, verdict.correct, verdict.reason,
                      completion.tool_calls, completion.finish_reason, params.seed, meta=item.meta)
