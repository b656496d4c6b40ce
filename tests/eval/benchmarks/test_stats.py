"""Bootstrap intervals: contain the estimate, repeat for a seed, narrow as n grows."""

from __future__ import annotations

import numpy as np
import pytest

from trtllm_mixquant.eval.benchmarks import bootstrap_mean, paired_bootstrap_difference


def coin_flips(n: int, p: float = 0.7, seed: int = 0) -> list[float]:
    return list((np.random.default_rng(seed).random(n) < p).astype(float))


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_interval_contains_the_estimate(n):
    est = bootstrap_mean(coin_flips(n), seed=1)
    assert est.low <= est.value <= est.high
    assert (est.n, est.seed, est.resamples, est.confidence) == (n, 1, 1000, 0.95)


def test_deterministic_for_a_seed():
    values = coin_flips(200)
    assert bootstrap_mean(values, seed=5) == bootstrap_mean(values, seed=5)
    assert bootstrap_mean(values, seed=5) != bootstrap_mean(values, seed=6)


def test_narrows_with_n():
    widths = [(lambda e: e.high - e.low)(bootstrap_mean(coin_flips(n))) for n in (50, 500, 5000)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[1] == pytest.approx(2 * 1.96 * (0.7 * 0.3 / 500) ** 0.5, rel=0.25)  # the normal approximation


def test_edges_and_string():
    assert bootstrap_mean([1.0] * 20).to_dict() == {"value": 1.0, "low": 1.0, "high": 1.0, "n": 20, "seed": 0,
                                                    "resamples": 1000, "confidence": 0.95}
    assert str(bootstrap_mean([1.0, 0.0], seed=3, resamples=10)).endswith("(95% CI, n=2, seed=3)")
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean([])


def test_paired_difference():
    a, b = coin_flips(300, 0.7, seed=1), coin_flips(300, 0.6, seed=2)
    diff = paired_bootstrap_difference(a, b, seed=0)
    assert diff.value == pytest.approx(np.mean(a) - np.mean(b)) and diff.low <= diff.value <= diff.high
    assert paired_bootstrap_difference(a, a).to_dict()["high"] == 0.0
    # pairing removes the shared per-item noise: a near-copy of `a` gives a much tighter interval than `b`
    near = list(a)
    near[:10] = [1.0 - v for v in near[:10]]
    tight = paired_bootstrap_difference(a, near)
    assert tight.high - tight.low < (diff.high - diff.low) / 2
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap_difference(a, b[:-1])
