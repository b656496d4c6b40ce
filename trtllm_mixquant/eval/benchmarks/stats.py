"""Accuracy with percentile-bootstrap confidence intervals, and the paired bootstrap of a difference.

Every estimate carries its sample count, seed and resample count, so that a 1-point difference
between two modes is read against its interval rather than on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    """A mean (accuracy or difference of accuracies) with its bootstrap confidence interval."""

    value: float
    low: float
    high: float
    n: int
    seed: int
    resamples: int
    confidence: float = 0.95

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{100 * self.value:.2f} [{100 * self.low:.2f}, {100 * self.high:.2f}] "
                f"({100 * self.confidence:g}% CI, n={self.n}, seed={self.seed})")


def bootstrap_mean(values: Sequence[float], seed: int = 0, resamples: int = DEFAULT_RESAMPLES,
                   confidence: float = 0.95) -> Estimate:
    """Mean of values (1.0 correct, 0.0 wrong for accuracy) with a percentile bootstrap interval."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("bootstrap needs a non-empty 1-D sequence of values")
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"need resamples >= 1 and 0 < confidence < 1 (got {resamples}, {confidence})")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # chunks bound memory at 256 x n indices
        stop = min(start + 256, resamples)
        means[start:stop] = data[rng.integers(0, data.size, size=(stop - start, data.size))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(float(data.mean()), float(low), float(high), int(data.size), seed, resamples, confidence)


def paired_bootstrap_difference(a: Sequence[float], b: Sequence[float], seed: int = 0,
                                resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95) -> Estimate:
    """mean(a) - mean(b) over the same items, resampling items (pairs) together."""
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length ({len(a)} vs {len(b)})")
    return bootstrap_mean(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), seed, resamples,
                          confidence)
