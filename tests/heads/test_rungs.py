"""A halving rung's state (heads.training.rungs): a run stopped after e epochs and continued to E equals the run trained
to E from scratch (history, selected epoch, weights), for every method (PIRL's memory bank and sampled
negatives, DCL with spatial maps and its PCA, the MLP baseline, the linear probe, K labels per class) and for
banks of heads; a state is only used by the run it belongs to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from heads.training import rungs
from heads.training.bank import banks_of
from heads.search.sweep import train_together
from heads.spec import RunSpec
from heads.training.experiment import Caches, run_experiment
from heads.options import EXPERIMENT_OPTIONS, defaults
from heads.search.grid import plan_sweep
from heads.results.runs import write_failed_run
from tests.support.synthetic import write_synthetic_cache

E, STOP = 5, 2


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Caches:
    d = tmp_path_factory.mktemp("rung-caches")
    kw = dict(num_classes=4, dim=16, num_views=2, kinds=("original", "jigsaw", "rcm"), spatial_shape=(3, 3))
    train = write_synthetic_cache(d / "train.h5", "train", per_class=16, seed=0, **kw)
    test = write_synthetic_cache(d / "test.h5", "test", per_class=4, seed=1, first_id=10_000, **kw)
    return Caches.load(str(train), str(test), ["none", "linear", "pirl", "dcl"], torch.device("cpu"),
                       log=lambda m: None, maps_in_memory="no")


def options_of(aux: str, **extra) -> RunSpec:
    return RunSpec.from_record({**defaults(aux), "aux": aux, "seed": 1, "standardize": True, "epochs": E, "batch_size": 16,
            "precision": "fp32", "val_fraction": 0.2, "warmup_epochs": 1, **extra})


def history(run: Path) -> list[dict]:
    lines = (run / "history.csv").read_text().splitlines()
    names = lines[0].split(",")
    return [{k: v for k, v in zip(names, line.split(",")) if k != "seconds"} for line in lines[1:]]


def weights(run: Path) -> dict:
    return torch.load(run / "model.pt", map_location="cpu", weights_only=False)["state_dict"]


def assert_same_run(a: Path, b: Path) -> None:
    assert history(a) == history(b)
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (a, b))
    assert ma["best_epoch"] == mb["best_epoch"] and ma["val"] == mb["val"]
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()  # bit for bit (PIRL's log_z is NaN until its first estimate: equal as NaN)
    assert all(torch.allclose(wa[k], wb[k], rtol=0, atol=0, equal_nan=True) for k in wa), [
        k for k in wa if not torch.allclose(wa[k], wb[k], rtol=0, atol=0, equal_nan=True)]


def sweep_dirs(tmp_path: Path, name: str) -> Path:
    return tmp_path / name / "runs" / "r"


@pytest.mark.parametrize("aux, extra", [
    ("pirl", {"aux_weight": 0.5}),  # the memory bank and the jigsaw views
    ("pirl", {"labels_per_class": "2"}),  # the labelled stream beside the epoch stream
    ("pirl", {"negatives": 8, "pirl_loss": "nce"}),  # negatives sampled by PIRL's own generator; NCE's log Z
    ("dcl", {"dcl_pca": 4}),  # spatial maps out of core, the fixed PCA, the RCM views
    ("none", {}),
])
def test_a_continued_run_equals_the_run_trained_from_scratch(caches, tmp_path, aux, extra):
    scratch = sweep_dirs(tmp_path, "scratch")
    run_experiment(caches, options_of(aux, **extra), scratch, score_test=False)
    rung = sweep_dirs(tmp_path, "halving")
    run_experiment(caches, options_of(aux, stop_after_epoch=STOP, **extra), rung, score_test=False)
    assert (rung / rungs.STATE_FILE).is_file() and len(history(rung)) == STOP
    rungs.set_aside(rung)  # what heads.search.halving.clear_shorter does before removing the shorter run
    shutil.rmtree(rung)
    run_experiment(caches, options_of(aux, **extra), rung, score_test=False)
    assert_same_run(rung, scratch)
    assert json.loads((rung / "metrics.json").read_text())["timing"]["continued_from_epoch"] == STOP
    assert not rungs.rung_file(rung).exists() and not (rung / rungs.STATE_FILE).exists()  # spent, and none new


def test_a_state_is_used_only_by_its_own_run(caches, tmp_path):
    rung = sweep_dirs(tmp_path, "s")
    run_experiment(caches, options_of("linear", stop_after_epoch=STOP), rung, score_test=False)
    rungs.set_aside(rung)
    assert rungs.load_for(rung, options_of("linear", lr=0.5)) is None  # other options: from scratch
    assert rungs.load_for(rung, options_of("linear", stop_after_epoch=STOP)) is None  # no longer than the state
    assert rungs.load_for(rung, options_of("linear"))["epoch"] == STOP
    assert not rungs.wants_state(options_of("linear"))  # a full run leaves none
    assert not rungs.wants_state(options_of("linear", stop_after_epoch=STOP, selection="cv", cv_folds=2,
                                            cv_fold="final"))  # a cv final run
    shutil.rmtree(rung)
    write_failed_run(rung, options_of("linear"), "diverged", 0.0)
    assert not rungs.rung_file(rung).exists()  # a failed run never continues


def bank_runs(tmp_path: Path, name: str, aux: str, stop: int | None) -> list:
    options = {o.name: () if o.sweepable else o.default for o in EXPERIMENT_OPTIONS}
    options.update(aux=(aux,), seeds="0", name=name, out=str(tmp_path), standardize=True, epochs=(str(E),),
                   batch_size=("16",), precision=("fp32",), weight_decay=("0.0001,0.001,0.01",))
    runs = plan_sweep(options).runs
    if stop:
        from heads.search.halving import at_rung

        runs = [at_rung(r, stop) for r in runs]
    (bank,), _ = banks_of(runs)
    return bank


def record_failed(run, message: str, seconds: float) -> None:
    write_failed_run(run.run_dir, run.spec, message, seconds)


@pytest.mark.parametrize("aux", ["linear", "none"])  # one LinearStack, and heads each on its own
def test_a_continued_bank_equals_the_bank_trained_from_scratch(caches, tmp_path, aux):
    train_together(bank_runs(tmp_path, "scratch", aux, None), caches, False, lambda m: None)
    rung = bank_runs(tmp_path, "halving", aux, STOP)
    train_together(rung, caches, False, lambda m: None)
    for run in rung:
        rungs.set_aside(run.run_dir)
        shutil.rmtree(run.run_dir)
    full = bank_runs(tmp_path, "halving", aux, None)
    train_together(full, caches, False, lambda m: None)
    for run in full:
        assert_same_run(run.run_dir, tmp_path / "scratch" / "runs" / run.run_dir.name)
        assert json.loads((run.run_dir / "metrics.json").read_text())["timing"]["continued_from_epoch"] == STOP
    assert not list((tmp_path / "halving" / "rungs").glob("*.pt"))


def test_a_state_left_by_a_kill_after_its_run_finished_is_removed_when_the_search_ends(tmp_path):
    from heads.search.halving import halving_search
    from tests.heads.test_halving import FakeExecutor, plan_of

    plan = plan_of(tmp_path, lrs="0.1,0.2,0.3", seeds="0")
    halving_search(plan.runs, FakeExecutor(lambda lr, seed: lr), eta=3, rungs=2)
    stale = rungs.rung_file(plan.runs[0].run_dir)  # as if killed between finishing a continued run and removing it
    stale.parent.mkdir(parents=True, exist_ok=True)
    rungs.save(stale, {"epoch": 1}, plan.runs[0].spec)
    halving_search(plan.runs, FakeExecutor(lambda lr, seed: lr), eta=3, rungs=2)  # a resume: nothing to train
    assert not stale.exists()


def test_the_best_epochs_weights_are_saved_only_when_they_are_not_the_current_ones():
    from heads.methods.linear import LinearProbe
    from heads.training.rungs import best_state, restore_best
    from heads.training.step import Best

    torch.manual_seed(0)
    method = LinearProbe(3, 4)
    earlier = {k: v.clone() + 1 for k, v in method.state_dict().items()}
    saved = best_state(Best(2, earlier, {"loss": 1.0}, [np.ones(2), np.zeros(2)]), epoch=3)
    assert saved["state"] is earlier and restore_best(saved, method).state is earlier
    current = best_state(Best(3, {k: v.clone() for k, v in method.state_dict().items()}, {}, [np.ones(2)] * 3), epoch=3)
    assert current["state"] is None  # the rung state's method weights are these
    restored = restore_best(current, method)
    assert restored.epoch == 3 and [list(x) for x in restored.losses] == [[1.0, 1.0]] * 3
    assert all(torch.equal(v, method.state_dict()[k]) for k, v in restored.state.items())


def test_a_damaged_state_is_one_line_naming_the_file(tmp_path):
    from pipeline.errors import PipelineError

    run_dir = tmp_path / "s" / "runs" / "r"
    rungs.rung_file(run_dir).parent.mkdir(parents=True)
    rungs.rung_file(run_dir).write_bytes(b"not a torch file")
    with pytest.raises(PipelineError) as e:
        rungs.load_for(run_dir, options_of("linear"))
    assert str(e.value).startswith(str(rungs.rung_file(run_dir))) and "delete it" in str(e.value)
    assert "\n" not in str(e.value)
