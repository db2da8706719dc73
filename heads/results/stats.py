"""Statistics of a comparison: mean +- std over seeds and the 95% interval of a paired difference.

A paired difference compares two methods run with the same seed (same validation split, same batch
order, same initialisation seed): d_s = top1(method, s) - top1(baseline, s).
- "t": Student's t interval over seeds, mean(d) +- t_{0.975, n-1} * sd(d) / sqrt(n) (sd with n - 1). It
  measures how much the difference moves with the seed on this test set. Below MIN_T_SEEDS (3) seeds it is
  not computed: with 2 seeds t_{0.975, 1} = 12.7 turns any spread into an interval of +-100 points, and one
  seed has no spread at all; the interval then says so (`Interval.computable` is False).
- `paired_bootstrap`: resample the N test images of ONE seed with replacement B times, recompute
  mean(correct_method) - mean(correct_baseline) on each resample, and take the 2.5th and 97.5th percentiles.
  It measures the test set's sampling noise only (the hierarchical bootstrap with one seed is this).
- "bootstrap" (the default everywhere): both sources at once, a hierarchical bootstrap (`hierarchical_bootstrap`). Each of B resamples draws
  n seeds with replacement, then N test images with replacement, and recomputes
  mean over the drawn seeds of mean over the drawn images of d[s, i] (d = per-image difference, or
  per-image correctness for one method's accuracy). Every seed is scored on the SAME test set, so
  seeds and images are crossed, not nested: one image draw is applied to every drawn seed of a
  resample. (Drawing the images afresh within each seed would treat the shared test set as n
  independent ones and shrink its noise n-fold.) 2.5th and 97.5th percentiles of the B statistics.

Every table and figure of a sweep and a study takes its intervals from `paired_interval` (a difference) and
`mean_interval` (one method's accuracy) with one `method`, RESAMPLES resamples and seed 0, so two files that
print the same interval print the same numbers.

Power (`power_of`): the minimum detectable effect of a paired comparison over n seeds,
MDE = (t_{1-a/2, n-1} + t_{1-b, n-1}) * s_d / sqrt(n), s_d the std (n - 1) over seeds of the paired difference
of test top-1, a = 0.05 two-sided, power 1 - b = 0.8; and the fewest seeds whose MDE at this s_d is at most a
target effect (`seeds_needed`). It reads the seed-to-seed spread only: the test set's own sampling noise is not in
it (the bootstrap interval holds both), and s_d from a few seeds is itself a rough estimate.

Every percentage a sweep or a study prints goes through `pct` (one rounding rule: half away from zero, on the
value in points), and a printed difference of two printed means is `pct_diff`: the difference of the rounded
means, so a table's Δ equals the difference of its own printed numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

CONFIDENCE = 0.95
MIN_T_SEEDS = 3  # fewer seeds: no t interval is printed (see the module docstring)
RESAMPLES = 10_000  # every bootstrap interval a sweep or a study prints


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
    method: str  # "t over N seeds", "hierarchical bootstrap over N seeds x M test images", ... or why there is none

    @property
    def computable(self) -> bool:
        """False when no interval could be computed (t over fewer than MIN_T_SEEDS seeds): low and high are nan."""
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def excludes_zero(self) -> bool:
        """The interval shows a difference: both ends on one side of 0 (an end at exactly 0 does not)."""
        return self.computable and (self.low > 0 or self.high < 0)


def no_t_interval(mean: float, n: int) -> Interval:
    """The Interval printed instead of a t interval over fewer than MIN_T_SEEDS seeds: the mean, no bounds."""
    return Interval(float(mean), math.nan, math.nan, n,
                    f"t over {n} seed{'s' if n != 1 else ''}: cannot be computed (needs at least {MIN_T_SEEDS} seeds)")


def t_interval(diffs: list[float] | np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """mean(d) +- t_{(1+c)/2, n-1} sd(d) / sqrt(n): Student's t interval of paired differences over seeds."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        raise ValueError(f"t interval: expected at least 2 paired differences, found {n}")
    mean, sd = d.mean(), d.std(ddof=1)
    from scipy import stats as sps  # here, not at import: scipy.stats takes 0.6-2.4 s to import

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


def _gather_means(weighted: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row-wise mean of weighted[b, idx[b, :]]: the drawn images' mean for each resample b."""
    return np.take_along_axis(weighted, idx, axis=1).mean(1)


def hierarchical_bootstrap(values: np.ndarray, resamples: int = 10_000, seed: int = 0,
                           confidence: float = CONFIDENCE, chunk: int = 500) -> Interval:
    """Percentile interval of mean(values) resampling seeds, then test images (shared by every seed).

    `values` is (n seeds, N images): per-image correctness of one method (its accuracy) or the paired
    per-image difference of two methods run with the same seed. Statistic of resample b:
    (1/n) sum_j (1/N) sum_k values[S_bj, I_bk], S_b ~ seeds with replacement, I_b ~ images with replacement.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] < 1:
        raise ValueError(f"hierarchical bootstrap: expected a (seeds, images) array, found shape {v.shape}")
    n, N = v.shape
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for lo in range(0, resamples, chunk):  # bounded memory: chunk x N at a time (CUB: 500 x 5,794)
        hi = min(resamples, lo + chunk)
        seed_counts = rng.multinomial(n, np.full(n, 1.0 / n), size=hi - lo)  # how often each seed was drawn
        weighted = seed_counts @ v / n  # (chunk, N): each image's mean over the drawn seeds
        stats[lo:hi] = _gather_means(weighted, rng.integers(0, N, size=(hi - lo, N)))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return Interval(float(v.mean()), float(low), float(high), n,
                    f"hierarchical bootstrap over {n} seed{'s' if n != 1 else ''} x {N} test images")


INTERVALS = ("bootstrap", "t")  # the study's choice: hierarchical bootstrap (default) or t over seeds
DEFAULT_INTERVAL = "bootstrap"
INTERVAL_NAMES = {"bootstrap": "hierarchical bootstrap over seeds and test images",
                  "t": "Student's t over seeds"}


def interval_description(method: str) -> str:
    """What an interval of `method` is, in a sentence a report prints."""
    if method == "bootstrap":
        return (f"a hierarchical bootstrap ({RESAMPLES:,} resamples: seeds with replacement, then test images with "
                "replacement; one image draw applies to every drawn seed, since every seed is scored on the same "
                "test set), percentile interval: it holds both the seed-to-seed spread and the test set's sampling "
                "noise")
    return (f"Student's t over the seeds' values (the test set's own sampling noise is not in it); with fewer than "
            f"{MIN_T_SEEDS} seeds it cannot be computed and none is printed")


def _check_method(method: str) -> None:
    if method not in INTERVALS:
        raise ValueError(f"interval: expected one of {', '.join(INTERVALS)}, found {method!r}")


def paired_interval(correct_a: np.ndarray, correct_b: np.ndarray, method: str = DEFAULT_INTERVAL,
                    resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """95% interval of top1(a) - top1(b) from (seeds, images) correctness arrays paired by seed and image.

    "bootstrap": the hierarchical bootstrap; "t": Student's t over the seeds' differences, or, below MIN_T_SEEDS
    seeds, an Interval that says it cannot be computed (no bounds).
    """
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired interval: expected two equal (seeds, images) arrays, found {a.shape} and {b.shape}")
    _check_method(method)
    if method == "bootstrap":
        return hierarchical_bootstrap(a - b, resamples=resamples, seed=seed)
    if len(a) < MIN_T_SEEDS:
        return no_t_interval((a - b).mean(), len(a))
    return t_interval((a - b).mean(1))


def mean_interval(correct: np.ndarray, method: str = DEFAULT_INTERVAL, resamples: int = RESAMPLES,
                  seed: int = 0) -> Interval:
    """95% interval of one method's mean test top-1 from its (seeds, images) correctness: the same kind of interval
    as its differences (the band of every label-efficiency figure)."""
    c = np.asarray(correct, dtype=float)
    if c.ndim != 2:
        raise ValueError(f"mean interval: expected a (seeds, images) array, found shape {c.shape}")
    _check_method(method)
    if method == "bootstrap":
        return hierarchical_bootstrap(c, resamples=resamples, seed=seed)
    if len(c) < MIN_T_SEEDS:
        return no_t_interval(c.mean(), len(c))
    return t_interval(c.mean(1))


# --- one rounding rule for every percentage printed ---------------------------------------------------------
def rounded_points(fraction: float, places: int = 2) -> Decimal:
    """100 x `fraction` rounded half away from zero to `places` decimals. The value is first written with 9
    decimals, so that binary noise (100 * 0.86875 = 86.87499999999999) does not decide a half."""
    return Decimal(f"{100 * fraction:.9f}").quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def pct(fraction: float, places: int = 2, sign: bool = False) -> str:
    """A fraction as points: '30.63' for 0.30625 ('+5.63' with `sign`); nan as 'nan'."""
    if fraction != fraction:
        return "nan"
    value = rounded_points(fraction, places)
    if value == 0:
        value = abs(value)  # never '-0.00'
    return f"{value:+.{places}f}" if sign else f"{value:.{places}f}"


def pct_diff(a: float, b: float, places: int = 2) -> str:
    """'+5.63': the printed mean of a minus the printed mean of b (both `pct`), so the difference a table prints
    is the difference of the means it prints."""
    value = rounded_points(a, places) - rounded_points(b, places)
    return f"{abs(value) if value == 0 else value:+.{places}f}"


# --- power: the effect a paired comparison over n seeds can detect ----------------------------------------
ALPHA = 0.05  # two-sided
POWER = 0.8
DEFAULT_TARGET_EFFECT = 1.0  # points: the effect a study's seeds should detect ([heads] target_effect)
MAX_SEEDS_SEARCHED = 1000  # seeds_needed looks no further


def _t_sum(n: np.ndarray | int, alpha: float = ALPHA, power: float = POWER) -> np.ndarray:
    """t_{1-a/2, n-1} + t_{power, n-1}."""
    from scipy import stats as sps  # here, not at import (see t_interval)

    df = np.asarray(n) - 1
    return sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)


def mde(s_d: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """(t_{1-a/2, n-1} + t_{power, n-1}) * s_d / sqrt(n), in the units of s_d; nan below 2 seeds (no spread)."""
    if n < 2 or s_d != s_d:
        return math.nan
    return float(_t_sum(n, alpha, power) * s_d / math.sqrt(n))


def seeds_needed(s_d: float, target: float, alpha: float = ALPHA, power: float = POWER,
                 limit: int = MAX_SEEDS_SEARCHED) -> int | None:
    """The fewest seeds n >= 2 whose MDE at this spread is at most `target` (same units); None when even `limit`
    seeds are not enough, or the spread is unknown (nan)."""
    if s_d != s_d or target <= 0:
        return None
    n = np.arange(2, limit + 1)
    ok = np.nonzero(_t_sum(n, alpha, power) * s_d / np.sqrt(n) <= target)[0]
    return int(n[ok[0]]) if len(ok) else None


@dataclass(frozen=True)
class Power:
    """A paired comparison's power over its seeds: n, the spread s_d of the per-seed differences, the MDE, and the
    seeds a target effect needs (fractions, like Interval; the target too)."""

    n: int
    s_d: float  # nan below 2 seeds
    mde: float  # nan below 2 seeds
    target: float
    needed: int | None  # None: more than MAX_SEEDS_SEARCHED, or no spread to judge from

    @property
    def computable(self) -> bool:
        return self.n >= 2

    def mde_text(self) -> str:
        """'4.21 points (s_d 1.50 over 3 seeds)' or why there is none."""
        if not self.computable:
            return f"cannot be computed: {self.n} seed{'s' if self.n != 1 else ''}, no seed-to-seed spread"
        return f"{pct(self.mde)} points (s_d {pct(self.s_d)} over {self.n} seeds)"

    def needed_text(self) -> str:
        """'9 seeds for 1.00 point', or why it is not known."""
        target = f"{pct(self.target)} point{'' if pct(self.target) == '1.00' else 's'}"
        if not self.computable:
            return f"seeds for {target}: unknown (no spread to judge from)"
        if self.needed is None:
            return f"more than {MAX_SEEDS_SEARCHED:,} seeds for {target}"
        return f"{self.needed} seeds for {target}"


def power_of(diffs: list[float] | np.ndarray, target: float = DEFAULT_TARGET_EFFECT / 100) -> Power:
    """Power of a paired comparison from its per-seed differences (fractions) and a target effect (a fraction)."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return Power(n, math.nan, math.nan, target, None)
    s_d = float(d.std(ddof=1))
    s_d = 0.0 if s_d < 1e-12 else s_d  # equal differences computed from different sums: float noise, not a spread
    return Power(n, s_d, mde(s_d, n), target, seeds_needed(s_d, target))


POWER_RULE = (f"minimum detectable effect (MDE) = (t_{{0.975, n-1}} + t_{{0.8, n-1}}) x s_d / sqrt(n): the paired "
              f"difference a two-sided test at 5% detects with 80% power over n seeds, s_d the standard deviation over "
              f"seeds of the per-seed difference in test top-1 (the seed-to-seed spread only, not the test set's "
              f"sampling noise); the seeds for a target effect: the fewest n whose MDE at that s_d is at most the target")
