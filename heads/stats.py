"""Statistics of a comparison: mean +- std over seeds and the 95% interval of a paired difference.

A paired difference compares two methods run with the same seed (same validation split, same batch
order, same initialisation seed): d_s = top1(method, s) - top1(baseline, s).
- With n >= 2 seeds: t-interval over seeds, mean(d) +- t_{0.975, n-1} * sd(d) / sqrt(n) (sd with n - 1).
  It measures how much the difference moves with the seed on this test set.
- With one seed: a paired bootstrap over test images: resample the N test images with replacement
  B times, recompute mean(correct_method) - mean(correct_baseline) on each resample, and take the
  2.5th and 97.5th percentiles. It measures the test set's sampling noise only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95


def mean_std(values: list[float] | np.ndarray) -> tuple[float, float]:
    """(mean, sample std with n - 1); std is 0 for a single value."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    method: str  # "t over N seeds" or "bootstrap over N test images"


def t_interval(diffs: list[float] | np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """mean(d) +- t_{(1+c)/2, n-1} sd(d) / sqrt(n): Student's t interval of paired differences over seeds."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        raise ValueError(f"t interval: expected at least 2 paired differences, found {n}")
    mean, sd = d.mean(), d.std(ddof=1)
    half = sps.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return Interval(float(mean), float(mean - half), float(mean + half), n, f"t over {n} seeds")


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 10_000, seed: int = 0,
                     confidence: float = CONFIDENCE) -> Interval:
    """Percentile interval of mean(a) - mean(b) over test images resampled with replacement (paired)."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired bootstrap: expected two equal-length 1-d arrays, found {a.shape} and {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for lo in range(0, resamples, 1000):  # 1000 resamples at a time bounds the memory at CUB's 5,794 images
        hi = min(resamples, lo + 1000)
        idx = rng.integers(0, len(diff), size=(hi - lo, len(diff)))
        means[lo:hi] = diff[idx].mean(1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(diff.mean()), float(low), float(high), 1, f"bootstrap over {len(diff)} test images")
