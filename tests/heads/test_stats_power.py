"""Power of a paired comparison (heads.results.stats: MDE and the seeds a target needs), the one rounding rule every printed
percentage follows, and grid edges (heads.results.edges)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from heads.cells import Cell
from heads.results.edges import edges_of
from heads.results.stats import (DEFAULT_TARGET_EFFECT, mde, pct, pct_diff, power_of, rounded_points, seeds_needed)


def test_mde_is_the_paired_formula_by_hand():
    """MDE = (t_{0.975, n-1} + t_{0.8, n-1}) s_d / sqrt(n), s_d the std (n - 1) of the per-seed differences."""
    diffs = np.array([0.012, -0.004, 0.020, 0.006, 0.001])
    s_d = diffs.std(ddof=1)
    by_hand = (sps.t.ppf(0.975, 4) + sps.t.ppf(0.8, 4)) * s_d / math.sqrt(5)
    p = power_of(diffs, 0.01)
    assert p.n == 5 and p.s_d == pytest.approx(s_d) and p.mde == pytest.approx(by_hand, rel=1e-12)
    assert mde(0.02, 2) == pytest.approx((12.706204736174707 + 1.3763819204711736) * 0.02 / math.sqrt(2), rel=1e-9)
    assert DEFAULT_TARGET_EFFECT == 1.0


def test_seeds_needed_is_the_fewest_whose_mde_reaches_the_target():
    for s_d, target in ((0.01, 0.01), (0.015, 0.01), (0.03, 0.005), (0.002, 0.01)):
        n = seeds_needed(s_d, target)
        assert n is not None and mde(s_d, n) <= target
        assert n == 2 or mde(s_d, n - 1) > target
    assert seeds_needed(0.01, 0.01) == 10  # (t_.975,9 + t_.8,9) / sqrt(10) = 0.9874: the first n at or under 1
    assert seeds_needed(0.5, 0.001) is None  # beyond the search: more than 1,000 seeds
    assert seeds_needed(float("nan"), 0.01) is None


def test_seeds_needed_grows_with_the_spread():
    spreads = np.linspace(0.0, 0.04, 41)
    needed = [seeds_needed(s, 0.01) for s in spreads]
    assert needed[0] == 2 and all(b >= a for a, b in zip(needed, needed[1:])) and needed[-1] > needed[10] > needed[1]


def test_equal_differences_have_no_spread_whatever_the_float_noise():
    a, b = np.zeros((2, 30)), np.zeros((2, 30))
    a[0, :1], a[1, :29], b[1, :28] = 1, 1, 1  # one image more right with either seed: 1/30 both times
    diffs = a.mean(1) - b.mean(1)
    assert diffs.std(ddof=1) > 0  # ... from different sums: 1/30 - 0 and 29/30 - 28/30 differ in the last bit
    p = power_of(diffs, 0.01)
    assert p.s_d == 0.0 and p.mde == 0.0 and p.needed == 2


def test_one_seed_has_no_spread_and_says_so():
    p = power_of([0.05], 0.01)
    assert not p.computable and math.isnan(p.mde) and p.needed is None
    assert "no seed-to-seed spread" in p.mde_text() and "unknown" in p.needed_text()


def test_one_rounding_rule_half_away_from_zero_on_the_printed_value():
    assert pct(0.30625) == "30.63" and pct(0.86875) == "86.88"  # 100 * 0.86875 is 86.87499999999999 in binary
    assert pct(-0.0005625, 3, sign=True) == "-0.056" and pct(-0.05625, sign=True) == "-5.63"
    assert pct(0.0, sign=True) == pct(-1e-12, sign=True) == "+0.00" and pct(0.125, 1) == "12.5"
    assert str(rounded_points(0.00005)) == "0.01"
    # a table's Δ is the difference of the means it prints, even where rounding the difference would not be
    a, b = 0.30624, 0.25006  # printed 30.62 and 25.01: their difference is 5.61; the rounded true one 5.62
    assert pct_diff(a, b) == "+5.61" and pct(a - b, sign=True) == "+5.62"
    assert pct_diff(0.30625, 0.25) == "+5.63" == f"{float(pct(0.30625)) - float(pct(0.25)):+.2f}"


def test_a_setting_at_the_edge_of_a_numeric_grid_is_flagged_and_an_interior_one_is_not():
    grid = {"linear": {"weight_decay": [1e-4, 1e-3, 1e-2], "lr": [0.1], "labels_per_class": ["all"]},
            "pirl": {"aux_weight": [0.01, 0.1], "pirl_loss": ["infonce", "nce"], "temperature": [0.07]}}
    top = edges_of(grid, Cell("linear", None), {"weight_decay": 1e-2, "lr": 0.1})
    assert [(e.option, e.side, e.value) for e in top] == [("weight_decay", "largest", 1e-2)]
    assert top[0].text() == "weight decay at the largest of 3 values tried (0.01; tried 0.0001, 0.001, 0.01)"
    assert edges_of(grid, Cell("linear", None), {"weight_decay": 1e-3, "lr": 0.1}) == []  # interior; one lr: not judged
    low = edges_of(grid, Cell("pirl", 1), {"aux_weight": 0.01, "pirl_loss": "nce", "temperature": 0.07})
    assert [(e.option, e.side) for e in low] == [("aux_weight", "smallest")]  # a choice option is never an edge


def test_a_setting_at_the_edge_of_two_grids_names_both():
    """summary.csv's grid_edges joins every edge of a setting (a dict keyed by setting once kept only the last)."""
    from heads.results.edges import edges_text

    grid = {"linear": {"weight_decay": [1e-4, 1e-2], "lr": [0.01, 0.1, 1.0]}}
    edges = edges_of(grid, Cell("linear", None), {"weight_decay": 1e-4, "lr": 1.0})
    text = edges_text(edges, Cell("linear", None))
    assert "weight decay at the smallest" in text and "lr at the largest" in text
    assert edges_text(edges, Cell("linear", 1)) == ""
