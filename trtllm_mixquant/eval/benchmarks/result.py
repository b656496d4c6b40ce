"""A benchmark run's outcome: one record per item, the accuracy with its interval, and comparisons."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from trtllm_mixquant.eval.benchmarks.stats import DEFAULT_RESAMPLES, Estimate, bootstrap_mean, \
    paired_bootstrap_difference


@dataclass(frozen=True)
class ItemRecord:
    """One item's request outcome: the reply, what was read from it, and the verdict.

    finish_reason: the server's ("length" marks a reply cut at max_tokens).
    error: why the request failed (the item then counts as wrong); None when it succeeded.
    """

    id: str
    prediction: str
    extracted: str | None
    correct: bool
    reason: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    seed: int | None = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkResult:
    """All records of one run, in item order, and the accuracy over them."""

    name: str
    records: list[ItemRecord]
    accuracy: Estimate
    params: dict[str, Any]

    @property
    def num_errors(self) -> int:
        return sum(r.error is not None for r in self.records)

    def accuracy_by(self, key: str) -> dict[str, Estimate]:
        """Accuracy per value of a metadata field (e.g. LongBench v2 "difficulty" or "length")."""
        groups: dict[str, list[float]] = defaultdict(list)
        for r in self.records:
            groups[str(r.meta.get(key))].append(float(r.correct))
        return {value: bootstrap_mean(scores, self.accuracy.seed, self.accuracy.resamples)
                for value, scores in sorted(groups.items())}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "accuracy": self.accuracy.to_dict(), "num_errors": self.num_errors,
                "params": self.params, "records": [asdict(r) for r in self.records]}


def compare(a: BenchmarkResult, b: BenchmarkResult, seed: int = 0,
            resamples: int = DEFAULT_RESAMPLES) -> Estimate:
    """Paired bootstrap of accuracy(a) - accuracy(b); both runs must cover the same item ids."""
    b_correct = {r.id: float(r.correct) for r in b.records}
    if set(b_correct) != {r.id for r in a.records}:
        raise ValueError(f"{a.name} and {b.name} were run on different items")
    return paired_bootstrap_difference([float(r.correct) for r in a.records],
                                       [b_correct[r.id] for r in a.records], seed, resamples)
