"""Successive halving (`sweep-heads --search halving`, heads.search.halving): rung bookkeeping on fake runs with known
quality, the budget model, selection of survivors only, the test split untouched before selection, and a
survivor equal to the grid's run."""

from __future__ import annotations

from heads.cells import k_text

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from heads.training import artifacts, rungs
from heads.options import EXPERIMENT_OPTIONS
from heads.search.halving import halving_budget, halving_search, log_grid, rung_epochs
from heads.search.grid import plan_sweep
from heads.results.selection import select
from tests.support.synthetic import write_synthetic_cache


def plan_of(tmp_path: Path, epochs: int = 27, lrs: str = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", seeds: str = "0,1",
            **extra):
    options = {o.name: () if o.sweepable else o.default for o in EXPERIMENT_OPTIONS}
    options.update(aux=("linear",), seeds=seeds, lr=(lrs,), epochs=(str(epochs),), name="s", out=str(tmp_path),
                   standardize=True, **extra)
    return plan_sweep(options)


class FakeExecutor:
    """execute(runs): write each run's files as training would, with val top-1 = quality(lr, seed) * epoch / E
    (so every rung ranks the settings by quality), continuing from a rung's state as run_experiment does
    (heads.training.rungs); records (label, seed, epochs reached, epochs it 'trained' itself)."""

    def __init__(self, quality):
        self.quality, self.trained, self.calls = quality, [], 0

    def __call__(self, runs) -> None:
        self.calls += 1
        for run in runs:
            if artifacts.is_complete(run.run_dir):
                continue
            full = run.spec.options.epochs
            n = run.spec.stop_after or full
            q = self.quality(run.spec.options.lr, run.seed)
            state = rungs.load_for(run.run_dir, run.spec)
            start = state["epoch"] if state else 0
            partial = artifacts.begin_run(run.run_dir)
            if rungs.wants_state(run.spec):
                rungs.save(partial / rungs.STATE_FILE, {"epoch": n}, run.spec)
            hist = [{"epoch": e, "val_acc": q * e / full, "val_loss": 2.0 - q * e / full} for e in range(1, n + 1)]
            artifacts.write_history(partial / "history.csv", hist)
            artifacts.write_json(partial / "metrics.json", {"val": {"top1": hist[-1]["val_acc"],
                                                                    "loss": hist[-1]["val_loss"]},
                                                            "best_epoch": n, "test": None, "timing": {}})
            artifacts.finish_run(partial, run.run_dir)
            rungs.rung_file(run.run_dir).unlink(missing_ok=True)
            self.trained.append((run.label, run.seed, n, n - start))


def test_rungs_keep_the_best_third_with_seeds_paired(tmp_path):
    plan = plan_of(tmp_path)
    fake = FakeExecutor(lambda lr, seed: lr + (0.05 if seed else 0.0))
    result = halving_search(plan.runs, fake, eta=3, rungs=3)
    assert fake.calls == 3 and rung_epochs(27, 3, 3) == [3, 9, 27]
    by_setting = {}
    for run in plan.runs:
        by_setting.setdefault(run.spec.options.lr, set()).add(result.stopped_at.get(run.run_dir))
    assert all(len(v) == 1 for v in by_setting.values())  # both seeds of a setting share their fate
    assert {lr: v.pop() for lr, v in by_setting.items()} == {
        0.1: 3, 0.2: 3, 0.3: 3, 0.4: 3, 0.5: 3, 0.6: 3, 0.7: 9, 0.8: 9, 0.9: None}
    full = [(label, seed, own) for label, seed, n, own in fake.trained if n == 27]
    assert sorted(full) == [("linear_lr=0.9", 0, 18), ("linear_lr=0.9", 1, 18)]  # continued from epoch 9
    # the budget model counts exactly the epochs the search trained (survivors continue from their rung)
    budget = halving_budget(plan.settings, 2, 27)
    assert budget.total_epochs == sum(own for *_, own in fake.trained) == (9 * 3 + 3 * (9 - 3) + (27 - 9)) * 2
    assert budget.grid_epochs == 9 * 27 * 2 and budget.may_stop == 16 and budget.runs == 18
    assert budget.rungs == [(3, 9), (9, 3), (27, 1)] and budget.max_epochs_per_run == 27
    # no state is left behind: the stopped runs' were deleted, the survivors' spent
    assert not list(tmp_path.rglob("*.pt"))


def test_a_resumed_halving_trains_nothing_again(tmp_path):
    plan = plan_of(tmp_path)
    quality = lambda lr, seed: lr  # noqa: E731
    first = halving_search(plan.runs, FakeExecutor(quality), eta=3, rungs=3)
    again = FakeExecutor(quality)
    second = halving_search(plan.runs, again, eta=3, rungs=3)
    assert again.trained == [] and second.stopped_at == first.stopped_at


def test_settings_compete_per_labels_per_class(tmp_path):
    plan = plan_of(tmp_path, lrs="0.1,0.2,0.3", labels_per_class=("1,all",))
    result = halving_search(plan.runs, FakeExecutor(lambda lr, seed: lr), eta=3, rungs=2)
    survivors = {(k_text(r.spec.k), r.spec.options.lr) for r in plan.runs if r.run_dir not in result.stopped_at}
    assert survivors == {("1", 0.3), ("all", 0.3)}


def test_stopped_runs_are_never_selected(tmp_path):
    row = {"aux": "linear", "labels_per_class": "all", "seed": "0", "status": "done", "val_loss": "1.0"}
    rows = [{**row, "setting": "a", "val_top1": "0.99", "stopped_at_epoch": "3", "run_dir": "runs/a"},
            {**row, "setting": "b", "val_top1": "0.50", "stopped_at_epoch": "", "run_dir": "runs/b"}]
    (entry,) = select(rows)
    assert entry["setting"] == "b" and entry["candidates"] == 2


def test_stoppable_settings_share_their_group(tmp_path):
    from heads.search.halving import stoppable

    settings = plan_of(tmp_path, lrs="0.1,0.2", labels_per_class=("1,all",)).settings
    assert stoppable(settings) == [True] * 4
    assert stoppable(plan_of(tmp_path, lrs="0.1", labels_per_class=("1,all",)).settings) == [False, False]


def test_budget_of_a_single_setting_is_the_grid():
    b = halving_budget(1, 3, 30)
    assert b.total_epochs == b.grid_epochs == 90 and b.may_stop == 0


def test_log_grid_and_rungs():
    assert log_grid(1e-6, 1e-2, 5) == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
    assert len(log_grid(1e-6, 1e-2, 10)) == 10
    assert rung_epochs(4, 3, 3) == [1, 4] and rung_epochs(30, 3, 3) == [3, 10, 30]
    with pytest.raises(ValueError):
        log_grid(0, 1, 3)


# --- the real command --------------------------------------------------------------------------------------
C, D = 4, 32
GRID = ["--aux", "linear", "--lr", "0.01,0.3,1", "--seeds", "0,1", "--epochs", "4", "--batch-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("halving-caches")
    kw = dict(num_classes=C, dim=D, separation=0.4)
    return {"train": write_synthetic_cache(d / "train.h5", "train", per_class=40, seed=0, **kw),
            "test": write_synthetic_cache(d / "test.h5", "test", per_class=30, seed=1, first_id=10_000, **kw)}


def sweep(caches, out: Path, name: str, *args: str):
    from heads.cli import sweep_main

    argv = ["--train", str(caches["train"]), "--test", str(caches["test"]), "--out", str(out), "--name", name,
            "--data-root", str(out / "no-images"), *GRID, *args]
    result = CliRunner().invoke(sweep_main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with open(out / name / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


class SplitSpy:
    """The test split's features: reading them before selection.json exists fails the test."""

    def __init__(self, table, sweep_dir: Path):
        self._table, self._sweep_dir, self.reads = table, sweep_dir, 0

    def __getattr__(self, name):
        assert (self._sweep_dir / "selection.json").is_file(), f"test features read ({name}) before selection"
        self.reads += 1
        return getattr(self._table, name)


def test_halving_sweep_selects_a_survivor_equal_to_the_grid_run(caches, tmp_path, monkeypatch):
    from heads.training.experiment import Caches

    spies = []
    load = Caches.load

    def spied(*args, **kwargs):
        loaded = load(*args, **kwargs)
        spies.append(SplitSpy(loaded.test_table, tmp_path / "h"))
        loaded.test_table = spies[-1]
        return loaded

    monkeypatch.setattr(Caches, "load", spied)
    rows = sweep(caches, tmp_path, "h", "--search", "halving", "--halving-eta", "3", "--halving-rungs", "2")
    assert spies and spies[0].reads > 0  # the test split was scored, after selection only
    assert {r["search"] for r in rows} == {"halving"}
    stopped = {r["setting"] for r in rows if r["stopped_at_epoch"]}
    survivors = {r["setting"] for r in rows if not r["stopped_at_epoch"]}
    assert len(survivors) == 1 and len(stopped) == 2
    assert {r["stopped_at_epoch"] for r in rows if r["stopped_at_epoch"]} == {"1"}  # round(4 / 3)
    (entry,) = json.loads((tmp_path / "h" / "selection.json").read_text())["selected"]
    assert entry["setting"] in survivors and entry["candidates"] == 3
    assert "successive halving" in (tmp_path / "h" / "summary.md").read_text()
    for r in rows:  # only the selection was scored on the test split
        tested = json.loads((tmp_path / "h" / r["run_dir"] / "metrics.json").read_text())["test"]
        assert bool(tested) == (r["setting"] == entry["setting"])
    monkeypatch.setattr(Caches, "load", load)
    grid = sweep(caches, tmp_path, "g")
    assert {r["search"] for r in grid} == {"grid"} and not any(r["stopped_at_epoch"] for r in grid)
    for seed in (0, 1):
        run = f"runs/{entry['setting']}_seed={seed}"
        h, g = (tmp_path / d / run for d in ("h", "g"))
        # every epoch's losses and validation record, the timing column aside; the grid trained these linear heads
        # as one stacked bank and the survivor continued alone: equal to rounding (heads.training.bank)
        read = lambda p: [{k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
                          for r in csv.DictReader(open(p / "history.csv"))]
        hh, gg = read(h), read(g)
        assert [list(r) for r in hh] == [list(r) for r in gg]
        for a, b in zip(hh, gg):
            assert {k: float(v) for k, v in a.items()} == pytest.approx({k: float(v) for k, v in b.items()},
                                                                        rel=1e-5, abs=1e-7)
        assert json.loads((h / "metrics.json").read_text())["val"] == pytest.approx(
            json.loads((g / "metrics.json").read_text())["val"], rel=1e-5)
        assert json.loads((h / "metrics.json").read_text())["timing"]["continued_from_epoch"] == 1  # not retrained
    assert not list((tmp_path / "h").rglob("*.pt")) or all(p.name == "model.pt" for p in (tmp_path / "h").rglob("*.pt"))
