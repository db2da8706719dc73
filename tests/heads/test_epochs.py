"""The epoch rule (heads.training.epochs): the kept epoch, the early stop and 'under-trained', on per-image validation losses
built by hand, and in the training loop on a cache whose validation labels are noise."""

from __future__ import annotations

import numpy as np
import pytest

from heads.training.epochs import Z, kept_epoch, lowest_epoch, should_stop, still_improving, worse


def test_worse_is_a_paired_test_over_the_images():
    base = np.array([1.0, 2.0, 3.0, 4.0])
    assert not worse(base, base)
    assert worse(base + 0.5, base)  # every image worse by the same amount: sd 0, a real difference
    assert not worse(base - 0.5, base)
    # mean difference 0.25, sd of the differences 0.5: 0.25 <= 1.96 * 0.5 / 2 = 0.49: within noise
    assert not worse(base + np.array([0.75, -0.25, 0.75, -0.25]), base)
    # mean 0.6, sd 0.2: 0.6 > 1.96 * 0.2 / 2
    assert worse(base + np.array([0.8, 0.4, 0.8, 0.4]), base)
    assert Z == 1.96


def test_one_validation_image_never_shows_a_worse_epoch_and_a_non_finite_epoch_is_worse():
    assert not worse(np.array([5.0]), np.array([1.0]))
    assert worse(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))
    assert not worse(np.array([1.0, 1.0]), np.array([np.inf, 1.0]))


def test_a_tie_of_a_few_images_keeps_the_latest_epoch_not_the_first():
    # the probe: 9 of 10 validation images right from epoch 2 to 12; the loss creeps up on the one
    # wrong image while the other nine grow more confident. The lowest mean loss is at epoch 2, but no later
    # epoch is worse beyond the noise of ten images: the rule keeps the last epoch.
    rng = np.random.default_rng(0)
    epochs = []
    for e in range(1, 13):
        right = np.full(9, 0.9 / e) + rng.normal(0, 0.01, 9).clip(-0.005, 0.005)
        wrong = np.array([2.0 + 0.25 * e])
        epochs.append(np.concatenate([right, wrong]))
    assert lowest_epoch(epochs) < 12
    assert kept_epoch(epochs) == 12


def test_overfitting_beyond_noise_keeps_the_earlier_epoch_and_stops_after_patience():
    n = 50
    low = np.full(n, 0.5)
    jitter = np.tile([0.1, -0.1], n // 2)  # per-image differences of sd 0.1: a standard error of 0.014
    curve = [low + 0.5, low, low + 0.01 + jitter, low + 0.3, low + 0.4 + jitter, low + 0.5, low + 0.6]
    assert kept_epoch(curve) == 3  # epoch 3 is within noise of the lowest (2); 4.. are worse
    assert should_stop(curve, patience=4)  # epochs 4-7: four in a row worse than the lowest
    assert not should_stop(curve, patience=5)
    assert not should_stop(curve, patience=0)


def test_kept_epoch_incrementally_equals_kept_epoch_of_the_whole_curve():
    rng = np.random.default_rng(3)
    curve = [np.abs(rng.normal(1.0 / (1 + 0.3 * e) + 0.02 * max(0, e - 8), 0.05, 30)) for e in range(15)]
    kept_at = [kept_epoch(curve[:e]) for e in range(1, 16)]
    # the loop keeps an epoch's weights when kept_epoch(curve[:e]) == e; the final answer is one it kept
    assert kept_epoch(curve) in {e for e, k in enumerate(kept_at, 1) if k == e}


def test_no_validation_keeps_the_last_epoch():
    assert kept_epoch([np.zeros(0)] * 4) == 4
    assert still_improving([np.zeros(0)] * 4, 4) is None


def test_still_improving_compares_the_last_epoch_with_the_one_a_quarter_of_the_budget_before():
    n = 40
    spread = np.linspace(0, 0.05, n)
    falling = [np.full(n, 2.0 - 0.1 * e) + spread for e in range(12)]
    judged = still_improving(falling, 12)
    assert judged["compared_epoch"] == 9 and judged["improving"]
    flat = falling[:8] + [falling[7] + spread[::-1] * 0.01] * 4
    assert not still_improving(flat, 12)["improving"]
    assert still_improving(falling[:10], 12) is None  # stopped before its ceiling: not judged
    # every image a little better at the end (a paired difference beyond noise) but by 0.3% of the loss: no
    # prediction moves; not under-trained (MATERIAL)
    tiny = [np.full(n, 1.0 - 0.001 * e) + spread for e in range(12)]
    assert worse(tiny[8], tiny[11]) and not still_improving(tiny, 12)["improving"]


@pytest.mark.parametrize("patience", [0, 3])
def test_the_loop_stops_a_run_whose_validation_loss_keeps_rising(tmp_path, patience):
    """Validation labels that are noise: training fits its rows, validation loss climbs; patience stops the run,
    patience 0 trains every epoch of the ceiling."""
    import torch

    from heads.training.data import FeatureTable, Scaler
    from heads.methods.linear import LinearProbe
    from heads.training.step import TrainOptions
    from heads.training.train import fit
    from pipeline.reader import read_cache
    from tests.support.synthetic import write_synthetic_cache

    cache = read_cache(write_synthetic_cache(tmp_path / "train.h5", num_classes=4, per_class=50, dim=64, seed=0))
    table = FeatureTable.from_cache(cache, set(), "cpu")
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(cache))
    train_rows, val_rows = np.sort(rows[:100]), np.sort(rows[100:])
    table.label[torch.from_numpy(val_rows)] = torch.from_numpy(rng.integers(0, 4, len(val_rows))).to(table.label.dtype)
    torch.manual_seed(0)
    result = fit(LinearProbe(4, 64), table, train_rows, val_rows, Scaler.identity(64),
                 TrainOptions(epochs=40, batch_size=25, lr=0.5, weight_decay=0.0, patience=patience), progress=False)
    assert result.best_epoch == kept_epoch(result.val_losses)
    if patience == 0:
        assert len(result.history) == 40 and result.stopped_early is None
    else:
        assert result.stopped_early is not None and len(result.history) == result.stopped_early < 40
        assert result.stopped_early - result.best_epoch >= patience
