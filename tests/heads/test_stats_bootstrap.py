"""The hierarchical bootstrap (seeds, then test images): constructed cases and coverage by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from heads.results.stats import hierarchical_bootstrap, paired_bootstrap, paired_interval, t_interval


def test_no_noise_gives_a_point_interval():
    d = np.full((3, 50), 0.25)
    iv = hierarchical_bootstrap(d, resamples=200)
    assert (iv.mean, iv.low, iv.high) == pytest.approx((0.25, 0.25, 0.25))
    assert iv.n == 3 and "3 seeds x 50 test images" in iv.method


def test_seed_noise_only_is_the_bootstrap_of_the_seed_means():
    """Every image of a seed has the same difference: only the seeds move the statistic."""
    per_seed = np.array([0.10, 0.20, 0.30, 0.40, 0.50])
    iv = hierarchical_bootstrap(np.repeat(per_seed[:, None], 40, axis=1), resamples=4000, seed=1)
    assert iv.mean == pytest.approx(0.30)
    # the bootstrap distribution of a mean of 5 values: sd = sd_pop / sqrt(5) = 0.1414 / 2.236 = 0.063
    assert iv.high - iv.low == pytest.approx(2 * 1.96 * 0.0632, rel=0.15)
    assert 0.10 < iv.low < 0.30 < iv.high < 0.50


def test_image_noise_only_matches_the_paired_bootstrap_over_images():
    """Identical seeds: resampling seeds changes nothing, so the interval is the image bootstrap's."""
    rng = np.random.default_rng(0)
    a, b = rng.random(400) < 0.7, rng.random(400) < 0.6
    diff = a.astype(float) - b
    iv = hierarchical_bootstrap(np.tile(diff, (3, 1)), resamples=4000, seed=2)
    ref = paired_bootstrap(a, b, resamples=4000, seed=2)
    assert iv.mean == pytest.approx(ref.mean)
    assert iv.high - iv.low == pytest.approx(ref.high - ref.low, rel=0.1)
    sd = diff.std() / np.sqrt(len(diff))
    assert iv.high - iv.low == pytest.approx(2 * 1.96 * sd, rel=0.1)


def test_known_difference_with_seed_and_image_noise_combines_both():
    """d[s, i] = 0.05 + u_s + v_i: the width reflects both the seed spread and the shared test set's noise."""
    rng = np.random.default_rng(3)
    u = np.array([-0.02, 0.0, 0.02, 0.01, -0.01, 0.0, 0.015, -0.015])
    v = rng.normal(0, 0.3, 500)
    d = 0.05 + u[:, None] + v[None, :]
    iv = hierarchical_bootstrap(d, resamples=4000, seed=4)
    both = np.sqrt(u.var() / len(u) + v.var() / len(v))  # the two sources' standard errors combined
    assert iv.high - iv.low == pytest.approx(2 * 1.96 * both, rel=0.15)
    seeds_only = t_interval(d.mean(1))  # the t interval over seeds sees none of the shared image noise
    assert seeds_only.high - seeds_only.low < 0.5 * (iv.high - iv.low)


def test_same_seed_same_interval_and_bad_shapes_refused():
    d = np.random.default_rng(5).normal(size=(2, 30))
    assert hierarchical_bootstrap(d, resamples=300, seed=7) == hierarchical_bootstrap(d, resamples=300, seed=7)
    with pytest.raises(ValueError, match="seeds, images"):
        hierarchical_bootstrap(np.zeros(5))
    with pytest.raises(ValueError, match="equal"):
        paired_interval(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="bootstrap, t"):
        paired_interval(np.zeros((2, 3)), np.zeros((2, 3)), method="z")


def test_paired_interval_t_and_bootstrap():
    rng = np.random.default_rng(6)
    a, b = (rng.random((3, 200)) < 0.8).astype(float), (rng.random((3, 200)) < 0.7).astype(float)
    t = paired_interval(a, b, method="t")
    assert t.method == "t over 3 seeds" and t.mean == pytest.approx((a - b).mean())
    boot = paired_interval(a, b, resamples=500)
    assert boot.method.startswith("hierarchical bootstrap") and boot.mean == pytest.approx(t.mean)
    for seeds in (1, 2):  # a t interval over fewer than 3 seeds is not computed, and says so
        few = paired_interval(a[:seeds], b[:seeds], method="t")
        assert not few.computable and not few.excludes_zero and few.mean == pytest.approx((a[:seeds] - b[:seeds]).mean())
        assert few.method.startswith(f"t over {seeds} seed") and "cannot be computed (needs at least 3 seeds)" in few.method
    assert t.computable and boot.computable


def _coverage(consistency: float, seeds: int = 5, images: int = 300, studies: int = 300, a: float = 0.12) -> float:
    """Share of simulated studies whose 95% interval covers the known population difference.

    Population: image i is right under the baseline with chance p_i ~ Beta(2c/3, c/3) (small c: most
    images are nearly always right or always wrong, as with real classifiers) and under the method with
    q_i = p_i + a (1 - p_i); so E[q - p] = a E[1 - p] = a / 3 exactly. A seed moves each chance by
    4 u p (1 - p), u ~ U(-0.1, 0.1) (mean 0, stays in [0, 1]). Each study draws a fresh test set, the
    seeds, and per-image correctness of both methods for every seed.
    """
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(studies):
        p = rng.beta(2 * consistency / 3, consistency / 3, images)
        q = p + a * (1 - p)
        u, w = rng.uniform(-0.1, 0.1, (seeds, 1)), rng.uniform(-0.1, 0.1, (seeds, 1))
        method = rng.random((seeds, images)) < q + 4 * u * q * (1 - q)
        base = rng.random((seeds, images)) < p + 4 * w * p * (1 - p)
        iv = hierarchical_bootstrap(method.astype(float) - base, resamples=400, seed=int(rng.integers(1 << 30)))
        covered += iv.low <= a / 3 <= iv.high
    return covered / studies


@pytest.mark.parametrize("consistency", [0.6, 5.0])
def test_coverage_by_simulation(consistency):
    """Nominal 95%: covered in 90-99% of 300 simulated studies, whether images are consistent across seeds
    (consistency 0.6) or not (5.0)."""
    rate = _coverage(consistency)
    assert 0.90 <= rate <= 0.99, f"coverage {rate:.3f} of a nominal 95% interval"
