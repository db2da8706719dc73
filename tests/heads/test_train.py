"""train-heads / evaluate-heads end to end on synthetic caches: accuracy, honesty of the artifacts, errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import heads.training.data
from heads.training.epochs import kept_epoch
from heads.cli import evaluate_main, train_main
from heads.training.metrics import METRIC_NAMES, metrics_from_predictions_csv
from tests.support.synthetic import bayes_accuracy, write_synthetic_cache
from pipeline.reader import read_cache

ROOT = Path(__file__).resolve().parents[2]
C, D, SEP = 4, 32, 0.4
FAST = ["--epochs", "12", "--batch-size", "64", "--lr", "0.2", "--quiet"]


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("caches")
    kw = dict(num_classes=C, dim=D, separation=SEP)
    return {
        "train": write_synthetic_cache(d / "train.h5", "train", per_class=80, seed=0, **kw),
        "test": write_synthetic_cache(d / "test.h5", "test", per_class=50, seed=1, first_id=10_000, **kw),
        "test_other": write_synthetic_cache(d / "test_other.h5", "test", per_class=50, seed=2, first_id=10_000, **kw),
    }


def run_train(caches, out: Path, *args: str, train: Path | None = None, test: Path | None = None):
    argv = ["--train", str(train or caches["train"]), "--test", str(test or caches["test"]), "--out", str(out),
            "--data-root", str(out / "no-images"), *FAST, *args]
    return CliRunner().invoke(train_main, argv, catch_exceptions=False)


def only_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="module")
def runs(caches, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for aux in ("none", "pirl"):
        parent = tmp_path_factory.mktemp(f"runs-{aux}")
        result = run_train(caches, parent, "--aux", aux)
        assert result.exit_code == 0, result.output
        out[aux] = only_run(parent)
    return out


@pytest.mark.parametrize("aux", ["none", "pirl"])
def test_reaches_the_achievable_accuracy(caches, runs, aux):
    test = read_cache(caches["test"])
    bayes = bayes_accuracy(test.features["original"], test.label, C, D, SEP)
    assert 0.75 < bayes < 1.0  # a task with headroom, not a trivial one
    top1 = json.loads((runs[aux] / "metrics.json").read_text())["test"]["top1"]
    assert top1 >= bayes - 0.08, (aux, top1, bayes)


@pytest.mark.parametrize("aux", ["none", "pirl"])
def test_artifacts_are_complete_and_consistent(runs, aux):
    run = runs[aux]
    assert run.name.endswith(f"-{aux}")
    for name in ("config.json", "history.csv", "metrics.json", "predictions.csv", "model.pt",
                 "curves.png", "confusion.png", "confusion.json"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("val", "test"):
        for key in METRIC_NAMES:
            assert 0.0 <= metrics[split][key] <= 1.0
    assert metrics_from_predictions_csv(run / "predictions.csv") == metrics["test"]
    with open(run / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == C * 50 and all(len(r["top5"].split()) == min(5, C) for r in rows)
    with open(run / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert len(history) == 12
    expected = {"epoch", "lr", "loss", "ce", "rows_ce", "train_acc", "val_loss", "val_acc", "seconds", "grad_norm"}
    expected |= {"pirl", "rows_pirl"} if aux == "pirl" else set()
    expected |= {"dead_frac"} if aux in ("none", "pirl") else set()  # the MLP's ReLU units (heads.training.health)
    assert set(history[0]) == expected
    assert all(int(r["rows_ce"]) == C * 80 - C * 8 for r in history)  # every training row, once per epoch
    best = metrics["best_epoch"]
    val_accs = [float(r["val_acc"]) for r in history]
    losses = np.load(run / "val_losses.npy")  # the epoch rule's input, saved: its choice is recomputed here
    assert losses.shape == (12, C * 8)
    assert losses.mean(1) == pytest.approx([float(r["val_loss"]) for r in history], rel=1e-5)
    assert best == kept_epoch(list(losses))
    assert metrics["val"]["top1"] == pytest.approx(val_accs[best - 1], abs=1e-6)
    assert metrics["convergence"]["ceiling"] == 12 and metrics["convergence"]["epochs_trained"] == 12
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["aux"] == aux and config["test_cache"]["config_hash"] and config["package"]
    assert config["backbone_untrained"] is False and metrics["backbone_untrained"] is False


def test_validation_rows_are_disjoint_from_trained_rows(caches, tmp_path, monkeypatch):
    seen: list[np.ndarray] = []
    real = heads.training.data.FeatureTable.batch

    def spy(self, idx, scaler, view=None, needs=None):
        if view is not None:  # training batches carry a view draw; evaluation batches do not
            seen.append(idx.numpy().copy())
        return real(self, idx, scaler, view, needs)

    monkeypatch.setattr(heads.training.data.FeatureTable, "batch", spy)
    assert run_train(caches, tmp_path, "--aux", "pirl", "--epochs", "2").exit_code == 0
    config = json.loads((only_run(tmp_path) / "config.json").read_text())
    train = read_cache(caches["train"], kinds=[])
    val_rows = np.flatnonzero(np.isin(train.image_id, config["val_image_ids"]))
    trained = np.unique(np.concatenate(seen))
    assert len(val_rows) == config["rows"]["val"] == round(0.1 * 80) * C
    assert np.bincount(train.label[val_rows]).tolist() == [8] * C  # stratified
    assert not np.intersect1d(trained, val_rows).size
    assert len(trained) + len(val_rows) == len(train)


def strip_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "timing"}


def test_same_seed_same_metrics_and_test_split_does_not_choose(caches, runs, tmp_path):
    again = run_train(caches, tmp_path / "a", "--aux", "pirl")
    assert again.exit_code == 0
    first = json.loads((runs["pirl"] / "metrics.json").read_text())
    second = json.loads((only_run(tmp_path / "a") / "metrics.json").read_text())
    assert strip_timing(first) == strip_timing(second)
    # a different test cache changes the test numbers only: same history, same epoch, same val metrics
    other = run_train(caches, tmp_path / "b", "--aux", "pirl", test=caches["test_other"])
    assert other.exit_code == 0
    third = json.loads((only_run(tmp_path / "b") / "metrics.json").read_text())
    assert third["best_epoch"] == first["best_epoch"] and third["val"] == first["val"]
    assert third["test"] != first["test"]
    h1 = [r.split(",")[:-1] for r in (runs["pirl"] / "history.csv").read_text().splitlines()]
    h3 = [r.split(",")[:-1] for r in (only_run(tmp_path / "b") / "history.csv").read_text().splitlines()]
    assert h1 == h3  # every column but seconds


def test_evaluate_heads_recomputes_test_metrics(runs):
    result = CliRunner().invoke(evaluate_main, [str(runs["none"]), str(runs["pirl"])], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("matches metrics.json") == 2
    assert "none" in result.output.splitlines()[1] and "pirl" in result.output.splitlines()[1]


def error_of(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("change, words", [
    (dict(backbone="other-net"), ["backbone"]),
    (dict(image_size=128), ["image_size"]),
    (dict(num_views=2), ["views"]),
    (dict(class_names=[f"{c:03d}.Other_{c}" for c in range(1, C + 1)]), ["class_names"]),
])
def test_mismatched_caches_are_refused(caches, tmp_path, change, words):
    kw = dict(num_classes=C, dim=D, separation=SEP, per_class=5, seed=3, first_id=50_000)
    test = write_synthetic_cache(tmp_path / "bad.h5", "test", **kw, **change)
    line = error_of(run_train(caches, tmp_path, "--aux", "none", test=test))
    assert all(w in line for w in words) and "bad.h5" in line
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # nothing trained, no run directory


def test_incomplete_cache_missing_view_and_nan_are_refused(caches, tmp_path):
    kw = dict(num_classes=C, dim=D, separation=SEP, per_class=10)
    half = write_synthetic_cache(tmp_path / "half.h5", complete=False, **kw)
    assert "incomplete" in error_of(run_train(caches, tmp_path, train=half))
    no_jig = write_synthetic_cache(tmp_path / "nojig.h5", kinds=("original", "rcm"), **kw)
    no_jig_test = write_synthetic_cache(tmp_path / "nojig_test.h5", "test", kinds=("original", "rcm"), first_id=900, **kw)
    line = error_of(run_train(caches, tmp_path, "--aux", "pirl", train=no_jig, test=no_jig_test))
    assert "--aux pirl" in line and "jigsaw" in line
    assert run_train(caches, tmp_path / "ok", "--aux", "none", "--epochs", "1", train=no_jig, test=no_jig_test).exit_code == 0
    nan = write_synthetic_cache(tmp_path / "nan.h5", nonfinite=("jigsaw", 7), **kw)
    line = error_of(run_train(caches, tmp_path, "--aux", "pirl", train=nan))
    assert "nan.h5" in line and "features/jigsaw" in line and "row 7" in line
    assert "--negatives" in CliRunner().invoke(train_main, ["--negatives", "some"]).output


def test_untrained_backbone_is_said_everywhere(tmp_path):
    kw = dict(num_classes=C, dim=D, separation=SEP, per_class=10, backbone_weights="untrained (random init, seed 0)")
    train = write_synthetic_cache(tmp_path / "u_train.h5", **kw)
    test = write_synthetic_cache(tmp_path / "u_test.h5", "test", first_id=500, **kw)
    result = run_train({}, tmp_path / "runs", "--aux", "none", "--epochs", "1", train=train, test=test)
    assert result.exit_code == 0
    assert "UNTRAINED" in result.output.split("--aux none: best epoch")[1]  # in the final table's header
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "metrics.json").read_text())["backbone_untrained"] is True
    assert json.loads((run / "config.json").read_text())["backbone_untrained"] is True


def test_gallery_reads_images_from_the_cache_paths(tmp_path):
    from PIL import Image

    kw = dict(num_classes=C, dim=D, separation=SEP, per_class=6)
    train = write_synthetic_cache(tmp_path / "train.h5", **kw)
    test = write_synthetic_cache(tmp_path / "test.h5", "test", first_id=500, **kw)
    root = tmp_path / "CUB_200_2011"
    for p in read_cache(test, kinds=[]).paths:
        (root / "images" / p).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (200, 30, 30)).save(root / "images" / p)
    argv = ["--train", str(train), "--test", str(test), "--out", str(tmp_path / "runs"), "--data-root", str(root),
            "--aux", "none", "--epochs", "1", "--quiet"]
    assert CliRunner().invoke(train_main, argv, catch_exceptions=False).exit_code == 0
    assert (only_run(tmp_path / "runs") / "predictions.png").is_file()


def test_train_heads_never_loads_tensorflow(caches, tmp_path):
    code = (
        "import sys\n"
        "from heads.cli import train_main\n"
        f"argv = ['--train', {str(caches['train'])!r}, '--test', {str(caches['test'])!r}, '--out', {str(tmp_path)!r},"
        " '--epochs', '1', '--aux', 'pirl', '--quiet']\n"
        "try:\n    train_main(argv)\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'tensorflow_hub'))\n"
        "assert not loaded, loaded\n"
        "print('no tensorflow')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no tensorflow" in out.stdout


def test_the_loop_calls_between_epochs_after_every_epoch(caches, tmp_path):
    """What a study uses to set torch's threads to the cores left free when a load starts during a run."""
    import torch

    from heads.options import MethodOptions
    from heads.spec import RunSpec
    from heads.training.experiment import Caches, run_specs

    loaded = Caches.load(str(caches["train"]), str(caches["test"]), ["linear"], torch.device("cpu"), log=lambda m: None)
    calls = []
    spec = RunSpec("linear", 0, MethodOptions.of({"epochs": 3, "batch_size": 16, "precision": "fp32", "patience": 0}))
    (result,) = run_specs(loaded, [(spec, tmp_path / "run")], between_epochs=lambda: calls.append(1))
    assert result.epochs == 3 and len(calls) == 3
