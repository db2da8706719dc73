"""A bank of heads (heads.bank): linear / none settings differing only in lr or weight decay, trained in one pass,
equal separate runs with the same seeds (same history, metrics, predictions; allclose weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from heads import artifacts
from heads.bank import banks_of, train_bank
from heads.experiment import Caches, run_experiment, score_saved_run
from heads.options import EXPERIMENT_OPTIONS
from heads.sweep import plan_sweep, write_failed_run
from tests.support.synthetic import write_synthetic_cache


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Caches:
    d = tmp_path_factory.mktemp("bank-caches")
    kw = dict(num_classes=4, dim=24, separation=0.4)
    train = write_synthetic_cache(d / "train.h5", "train", per_class=30, seed=0, **kw)
    test = write_synthetic_cache(d / "test.h5", "test", per_class=10, seed=1, first_id=10_000, **kw)
    return Caches.load(str(train), str(test), ["linear", "none", "pirl"], torch.device("cpu"), log=lambda m: None)


def plan(tmp_path: Path, aux: str, seeds: str = "0", **grid: str):
    options = {o.name: () if o.sweepable else o.default for o in EXPERIMENT_OPTIONS}
    options.update(aux=(aux,), seeds=seeds, name="s", out=str(tmp_path), standardize=True, epochs=("3",),
                   batch_size=("32",), precision=("fp32",))
    options.update({k: (v,) for k, v in grid.items()})
    return plan_sweep(options).runs


def record_failed(run, message: str, seconds: float) -> None:
    write_failed_run(run.run_dir, run.options, message, seconds)


def strip_seconds(path: Path) -> list[list[str]]:
    lines = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(lines[0]) if name != "seconds"]
    return [[row[i] for i in keep] for row in lines]


@pytest.mark.parametrize("aux, grid", [
    ("linear", {"weight_decay": "0,1e-3,1e-1", "lr": "0.05,0.3"}),
    ("none", {"weight_decay": "1e-4,1e-2", "labels_per_class": "2"}),
])
def test_a_bank_equals_separate_runs(caches, tmp_path, aux, grid):
    runs = plan(tmp_path / "bank", aux, **grid)
    banks, alone = banks_of(runs)
    assert len(banks) == 1 and len(banks[0]) == len(runs) and not alone
    train_bank(caches, runs, False, lambda m: None, record_failed)
    for run in runs:
        separate = tmp_path / "separate" / run.run_dir.name
        run_experiment(caches, run.options, separate, score_test=False)
        banked = run.run_dir
        assert strip_seconds(banked / "history.csv") == strip_seconds(separate / "history.csv")
        assert json.loads((banked / "config.json").read_text()) == json.loads((separate / "config.json").read_text())
        mine, theirs = (json.loads((p / "metrics.json").read_text()) for p in (banked, separate))
        assert mine["val"] == theirs["val"] and mine["best_epoch"] == theirs["best_epoch"]
        assert mine["timing"]["bank"]["heads"] == len(runs)
        a, b = (artifacts.load_model(p / "model.pt")["state_dict"] for p in (banked, separate))
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
        assert score_saved_run(caches, banked) == score_saved_run(caches, separate)
        assert (banked / "predictions.csv").read_text() == (separate / "predictions.csv").read_text()


def test_only_optimiser_only_grids_of_one_seed_share_a_bank(tmp_path):
    banks, alone = banks_of(plan(tmp_path, "linear", seeds="0,1", weight_decay="0,1e-3", epochs="3,4"))
    assert sorted(len(b) for b in banks) == [2, 2, 2, 2]  # (seed, epochs) each: a bank of the two weight decays
    assert all(len({r.seed for r in b}) == 1 and len({r.options["epochs"] for r in b}) == 1 for b in banks)
    banks, alone = banks_of(plan(tmp_path, "pirl", weight_decay="0,1e-3"))
    assert banks == [] and len(alone) == 2


def test_a_diverging_head_fails_alone(caches, tmp_path):
    runs = plan(tmp_path, "linear", lr="0.1,1e30")
    messages = dict((r.options["lr"], m) for r, m in train_bank(caches, runs, False, lambda m: None, record_failed))
    assert "diverged" in messages[1e30] and "val top-1" in messages[0.1]
    failed = json.loads((runs[1].run_dir / "metrics.json").read_text())
    assert "diverged" in failed["failed"]
    separate = tmp_path / "separate"
    run_experiment(caches, runs[0].options, separate, score_test=False)
    assert strip_seconds(runs[0].run_dir / "history.csv") == strip_seconds(separate / "history.csv")
