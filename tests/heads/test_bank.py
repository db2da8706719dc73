"""A bank of heads (heads.training.bank): linear / none settings differing only in lr or weight decay, trained in one pass,
equal separate runs with the same seeds: `none` heads exactly (each runs its own forward and backward); linear
heads, trained as one stack (one product for all heads, a vectorised SGD), to float rounding: the same epochs,
selection and predictions, losses to 1e-5 and weights to 1e-6 in fp32 (1e-3 and 1e-4 in bf16)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from heads.training import artifacts
from heads.training.bank import banks_of
from heads.search.sweep import train_together
from heads.training.steppers import LinearStack, stacks
from heads.methods.linear import LinearProbe
from heads.training.experiment import Caches, run_experiment, score_saved_run
from heads.options import EXPERIMENT_OPTIONS
from heads.search.grid import plan_sweep
from heads.results.runs import write_failed_run
from heads.training.step import EpochTally, TrainOptions
from heads.training.steppers import HeadByHead
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
    write_failed_run(run.run_dir, run.spec, message, seconds)


def strip_seconds(path: Path) -> list[list[str]]:
    lines = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(lines[0]) if name != "seconds"]
    return [[row[i] for i in keep] for row in lines]


def assert_same_history(mine: Path, theirs: Path, rel: float) -> None:
    """history.csv without the seconds: identical text (rel 0), or the same columns and epochs with every
    number within `rel` (relative) of the other's."""
    a, b = strip_seconds(mine), strip_seconds(theirs)
    if not rel:
        assert a == b
        return
    assert a[0] == b[0] and len(a) == len(b)
    for row_a, row_b in zip(a[1:], b[1:]):
        assert [float(v) for v in row_a] == pytest.approx([float(v) for v in row_b], rel=rel, abs=rel / 100)


def assert_same_val(mine: dict, theirs: dict, rel: float) -> None:
    assert mine.keys() == theirs.keys() and all(mine[k] == pytest.approx(theirs[k], rel=rel, abs=0) for k in mine)


# none: each head's own forward and backward (exact); linear: one LinearStack, equal to fp32 rounding, or in
# bf16 to bf16 rounding of the products (a separate bf16 run's own products round the same way only in the
# same kernel)
TOLERANCE = {"fp32": (1e-5, 1e-6), "bf16": (1e-3, 1e-4)}  # (history and metrics, relative; weights, absolute)


@pytest.mark.parametrize("aux, grid", [
    ("linear", {"weight_decay": "0,1e-3,1e-1", "lr": "0.05,0.3"}),
    ("linear", {"weight_decay": "1e-4,1e-2", "labels_per_class": "3"}),
    ("linear", {"weight_decay": "1e-3,1e-1", "precision": "bf16"}),
    ("none", {"weight_decay": "1e-4,1e-2", "labels_per_class": "2"}),
])
def test_a_bank_equals_separate_runs(caches, tmp_path, aux, grid):
    runs = plan(tmp_path / "bank", aux, **grid)
    banks, alone = banks_of(runs)
    assert len(banks) == 1 and len(banks[0]) == len(runs) and not alone
    train_together(runs, caches, False, lambda m: None)
    rel, atol = (0.0, 0.0) if aux == "none" else TOLERANCE[grid.get("precision", "fp32")]
    for run in runs:
        separate = tmp_path / "separate" / run.run_dir.name
        run_experiment(caches, run.spec, separate, score_test=False)
        banked = run.run_dir
        assert sorted(p.name for p in banked.iterdir()) == sorted(p.name for p in separate.iterdir())
        assert_same_history(banked / "history.csv", separate / "history.csv", rel)
        assert json.loads((banked / "config.json").read_text()) == json.loads((separate / "config.json").read_text())
        mine, theirs = (json.loads((p / "metrics.json").read_text()) for p in (banked, separate))
        assert_same_val(mine["val"], theirs["val"], rel)
        assert mine["best_epoch"] == theirs["best_epoch"] and mine["timing"]["bank"]["heads"] == len(runs)
        a, b = (artifacts.load_model(p / "model.pt")["state_dict"] for p in (banked, separate))
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=atol) for k in a)
        assert_same_val(score_saved_run(caches, banked), score_saved_run(caches, separate), rel)
        assert (banked / "predictions.csv").read_text() == (separate / "predictions.csv").read_text()


def test_only_optimiser_only_grids_of_one_seed_share_a_bank(tmp_path):
    banks, alone = banks_of(plan(tmp_path, "linear", seeds="0,1", weight_decay="0,1e-3", epochs="3,4"))
    assert sorted(len(b) for b in banks) == [2, 2, 2, 2]  # (seed, epochs) each: a bank of the two weight decays
    assert all(len({r.seed for r in b}) == 1 and len({r.spec.options.epochs for r in b}) == 1 for b in banks)
    banks, alone = banks_of(plan(tmp_path, "pirl", weight_decay="0,1e-3"))
    assert banks == [] and len(alone) == 2


def test_a_diverging_head_fails_alone(caches, tmp_path):
    runs = plan(tmp_path, "linear", lr="0.1,1e30")
    said = train_together(runs, caches, False, lambda m: None)
    messages = {r.spec.options.lr: said[r.run_dir] for r in runs}
    assert "diverged" in messages[1e30] and "val top-1" in messages[0.1]
    failed = json.loads((runs[1].run_dir / "metrics.json").read_text())
    assert "diverged" in failed["failed"]
    separate = tmp_path / "separate"
    run_experiment(caches, runs[0].spec, separate, score_test=False)
    assert_same_history(runs[0].run_dir / "history.csv", separate / "history.csv", rel=1e-5)


def test_a_stack_step_is_each_heads_own_sgd_step():
    torch.manual_seed(0)
    # --grad-clip off, clipping every step (this batch's gradient norms are about 1-2), and above every norm
    opts = [TrainOptions(lr=lr, weight_decay=wd, momentum=0.9, epochs=3, warmup_epochs=1, grad_clip=clip)
            for lr, wd, clip in ((0.1, 0.0, 0.0), (0.3, 1e-2, 0.2), (0.05, 0.5, 100.0))]
    methods = [LinearProbe(5, 7) for _ in opts]
    separate = [copy.deepcopy(m) for m in methods]
    batches = [{"index": torch.arange(9), "original": torch.randn(9, 7), "label": torch.randint(5, (9,)),
                "labelled": torch.ones(9, dtype=torch.bool)} for _ in range(3)]
    stack = LinearStack(methods, opts)
    assert all(m.probe.linear.weight.data_ptr() == stack.weight[5 * i:].data_ptr() for i, m in enumerate(methods))
    for h in stack.heads:
        h.tally = EpochTally(h.method.component_rows)
    for step, batch in enumerate(batches):
        stack.step(stack.heads, batch, step, (3, 1), 1)
    stack.close()  # each head owns its parameters again
    assert all(m.probe.linear.weight.data_ptr() != stack.weight[5 * i:].data_ptr() for i, m in enumerate(methods))
    for h, m, o in zip(stack.heads, separate, opts):  # each head's separate run: the general step, a bank of one
        alone = HeadByHead([m], [o], torch.device("cpu"))
        one = alone.heads[0]
        one.tally = one.new_tally()
        for step, batch in enumerate(batches):
            alone.step([one], batch, step, (3, 1), 1)
        alone.close()
        for k, v in m.state_dict().items():
            assert torch.allclose(h.method.state_dict()[k], v, rtol=0, atol=1e-6), k
        assert h.tally.row(1, h.lr) == pytest.approx(one.tally.row(1, one.lr), rel=1e-6)
        if o.grad_clip == 0.2:  # the clip acted: every step's norm was above it
            assert h.tally.row(1, h.lr)["grad_norm"] > 0.2


def test_linear_banks_stack_and_the_others_train_head_by_head(caches):
    torch.manual_seed(0)
    fp32, bf16 = TrainOptions(precision="fp32"), TrainOptions(precision="bf16")
    assert stacks([LinearProbe(4, 24), LinearProbe(4, 24)], [fp32, fp32])
    assert stacks([LinearProbe(4, 24), LinearProbe(4, 24)], [bf16, bf16])
    assert not stacks([LinearProbe(4, 24), LinearProbe(4, 24)], [TrainOptions(precision="fp16")] * 2)
    assert not stacks([LinearProbe(4, 24), LinearProbe(5, 24)], [fp32, fp32])
    assert not stacks([LinearProbe(4, 24), LinearProbe(4, 24)], [fp32, TrainOptions(momentum=0.5)])
    from heads.options import MethodOptions
    from heads.training.experiment import build_method
    none = [build_method("none", MethodOptions.of({"seed": 0}), caches.train) for _ in range(2)]
    assert not stacks(none, [fp32, fp32])
