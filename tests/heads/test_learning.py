"""Every method learns on features shaped like a real backbone's, and a run that does not learn is flagged.

The caches are tests.support.synthetic's real-shaped ones (post-ReLU, sparse, a large shared channel mean,
heavy-tailed channel scales, silent channels that fire on shuffled views) at D = 512: wide enough that DCL's
adapter dies on them without the per-channel standardisation of its maps, as it did on a random
ResNet-50's maps (issue: every method learns).
"""

from __future__ import annotations

from heads.spec import RunSpec

import csv
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from heads.methods import dcl
from heads.cli import sweep_main
from heads.training.experiment import Caches, run_experiment
from heads.training.health import chance_threshold, learned, loss_growth, run_health, verdict
from heads.options import defaults
from tests.support.synthetic import write_synthetic_cache

C, D, SEP = 6, 512, 0.12
FAST = {"epochs": 8, "batch_size": 32, "precision": "fp32", "val_fraction": 0.1, "val_per_class": None,
        "standardize": True, "labels_per_class": "all", "seed": 0}
SMALL = {"pirl": {"aux_weight": 0.1}, "dcl": {}, "dcl-none": {"dcl_hidden": 64}}  # dcl at its default width 512


@pytest.fixture(scope="module")
def real_shaped(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("real-shaped")
    kw = dict(num_classes=C, dim=D, num_views=2, features="resnet", spatial_shape=(4, 4), separation=SEP)
    return {"train": write_synthetic_cache(d / "train.h5", "train", per_class=30, seed=0, **kw),
            "test": write_synthetic_cache(d / "test.h5", "test", per_class=15, seed=1, first_id=10_000, **kw)}


@pytest.fixture(scope="module")
def caches(real_shaped) -> Caches:
    return Caches.load(str(real_shaped["train"]), str(real_shaped["test"]), list(SMALL) + ["none", "linear"],
                       torch.device("cpu"), log=lambda _: None)


def train(caches: Caches, aux: str, out: Path, **changes) -> dict:
    options = {**defaults(aux), **FAST, **SMALL.get(aux, {}), "aux": aux, **changes}
    result = run_experiment(caches, RunSpec.from_record(options), out / aux, score_test=True)
    return json.loads((result.run_dir / "metrics.json").read_text())


def test_the_caches_are_shaped_like_a_resnets(real_shaped):
    """Non-negative, about half zeros in the maps, one shared channel-mean vector dominating every position after a
    per-position LayerNorm (0.785 on a random ResNet-50's maps of the sample), silent channels that fire on views."""
    from pipeline.reader import read_cache

    cache = read_cache(str(real_shaped["train"]), kinds=["original", "rcm"])
    maps = torch.from_numpy(cache.spatial("original")).float().reshape(-1, D)
    assert float(maps.min()) == 0.0 and 0.4 < float((maps == 0).float().mean()) < 0.65
    normed = torch.nn.functional.layer_norm(maps, (D,))
    shared = float(normed.mean(0).square().sum() / normed.square().sum(1).mean())
    assert shared > 0.7
    original, views = torch.from_numpy(cache.features["original"]), torch.from_numpy(cache.features["rcm"])
    silent = original.std(0) == 0
    assert silent.sum() > D // 20 and float((views[..., silent] > 0).float().mean()) > 0.5


@pytest.mark.parametrize("aux", ["none", "linear", "pirl", "dcl", "dcl-none"])
def test_every_method_learns_on_real_shaped_features(caches, tmp_path, aux):
    metrics = train(caches, aux, tmp_path)
    health = metrics["health"]
    # learned: "ok", or "under-trained" (8 epochs is short for the MLP here: validation still falls at the end)
    assert learned([health["state"]]), health
    assert health["best_train_acc"] > 0.8
    assert metrics["test"]["top1"] > 3 / C, metrics["test"]  # chance is 1/C
    if aux.startswith("dcl"):
        assert health["dead_frac"] < 0.2


def test_dcl_without_its_map_standardisation_dies_and_is_flagged(caches, tmp_path, monkeypatch):
    """The failure these caches exist to show: without the per-channel standardisation (and without clipping)
    the adapter's ReLU units die on real-shaped maps; the run's health says so."""
    monkeypatch.setattr(dcl.ChannelStandardize, "forward", lambda self, x: x)
    metrics = train(caches, "dcl-none", tmp_path, grad_clip=0.0, dcl_network="maps")  # the classifier on the maps
    assert metrics["health"]["state"] in ("dead-units", "at-chance"), metrics["health"]
    assert metrics["test"]["top1"] < 0.6


def history(*rows: dict) -> list[dict]:
    return [{"epoch": i + 1, "lr": 0.1, "rows_ce": 100, **r} for i, r in enumerate(rows)]


def test_health_judges_growth_chance_and_dead_units():
    ok = history({"loss": 2.0, "ce": 2.0, "train_acc": 0.3}, {"loss": 1.0, "ce": 1.0, "train_acc": 0.9})
    assert run_health(ok, 10, 2)["state"] == "ok"
    grew = history({"loss": 1.5, "adv": 0.69, "train_acc": 0.5}, {"loss": 3.0, "adv": 2.5, "train_acc": 0.9})
    assert run_health(grew, 10, 2)["state"] == "diverged" and "adv" in run_health(grew, 10, 2)["why"]
    assert loss_growth(history({"align": 0.01}, {"align": 0.05})) is None  # 5x, but by less than 0.1: noise
    flat = history({"loss": 2.3, "train_acc": 0.1}, {"loss": 2.3, "train_acc": 0.12})
    assert run_health(flat, 10, 2)["state"] == "at-chance"
    assert run_health(flat, 10, 2, val_rows=40)["state"] == "at-chance"  # no val_acc in its history
    val = history({"loss": 2.3, "train_acc": 0.1, "val_acc": 0.1}, {"loss": 2.2, "train_acc": 0.15, "val_acc": 0.6})
    assert run_health(val, 10, 2, val_rows=40)["state"] == "ok"  # training accuracy lagging, validation well above
    assert run_health(val, 10, 2)["state"] == "at-chance"  # val_acc without its rows is not judged
    one_class = history({"loss": 2.3, "train_acc": 0.1, "val_acc": 0.1}, {"loss": 2.3, "train_acc": 0.1, "val_acc": 0.1})
    assert run_health(one_class, 10, 2, val_rows=40)["state"] == "at-chance"
    dead = history({"loss": 2.0, "train_acc": 0.5, "dead_frac": 0.1}, {"loss": 1.9, "train_acc": 0.6, "dead_frac": 0.8})
    assert run_health(dead, 10, 2)["state"] == "dead-units" and run_health(dead, 10, 1)["state"] == "ok"
    assert run_health([], 10, 0, failed="the ce loss turned nan")["state"] == "diverged"
    assert chance_threshold(10, 10_000) == pytest.approx(0.2)  # twice chance with many rows
    assert chance_threshold(10, 20) > 0.2 and chance_threshold(2, 10**6) == pytest.approx(0.75)
    assert verdict(["ok", "ok"]) == "ok" and verdict(["ok", "at-chance"]) == "at-chance in 1 of 2 seeds"


def test_a_planted_failure_is_flagged_in_runs_csv_selection_and_summary(real_shaped, tmp_path, monkeypatch):
    """DCL's adapter planted dead (every ReLU unit off from the start): its runs are flagged in runs.csv and
    selection.json, the summary marks it as not having learned, and its difference is never shown as an effect."""
    build = dcl.DCLBaseline.__init__

    def dead_on_arrival(self, *args, **kwargs):
        build(self, *args, **kwargs)
        if type(self) is dcl.DCL:
            torch.nn.init.constant_(self.adapter[0].bias, -1e3)

    monkeypatch.setattr(dcl.DCLBaseline, "__init__", dead_on_arrival)
    argv = ["--train", str(real_shaped["train"]), "--test", str(real_shaped["test"]), "--out", str(tmp_path),
            "--name", "s", "--aux", "dcl,dcl-none", "--seeds", "0,1", "--epochs", "4", "--batch-size", "32",
            "--precision", "fp32", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(sweep_main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    sweep = tmp_path / "s"
    rows = list(csv.DictReader(open(sweep / "runs.csv")))
    assert {r["aux"] for r in rows if r["health"] == "dead-units"} == {"dcl"}
    assert {r["health"] for r in rows if r["aux"] == "dcl-none"} <= {"ok", "under-trained"}  # 4 epochs: learned
    selected = {e["aux"]: e for e in json.loads((sweep / "selection.json").read_text())["selected"]}
    assert selected["dcl"]["health"] == ["dead-units", "dead-units"] and learned(selected["dcl-none"]["health"])
    summary = (sweep / "summary.md").read_text()
    assert "| dcl **(did not learn: dead-units in 2 of 2 seeds)** |" in summary
    assert "not an effect: dcl did not learn" in summary
    table = {r["aux"]: r for r in csv.DictReader(open(sweep / "summary.csv"))}
    assert table["dcl"]["health"] == "dead-units in 2 of 2 seeds"


def test_a_model_saved_before_maps_were_standardised_is_refused_in_one_line(caches, tmp_path):
    """An old DCL model.pt (adapter = LayerNorm, Linear, ReLU; no fixed transform) is one error line, exit 2."""
    from heads.cli import evaluate_main

    train(caches, "dcl-none", tmp_path, epochs=1, dcl_network="maps")
    model = tmp_path / "dcl-none" / "model.pt"
    saved = torch.load(model, weights_only=True)
    del saved["config"]["builder_options"]["dcl_network"]  # it predates --dcl-network too
    state = saved["state_dict"]
    saved["state_dict"] = {k.replace("adapter.0.", "adapter.1."): v for k, v in state.items() if not k.startswith("fixed.")}
    torch.save(saved, model)
    result = CliRunner().invoke(evaluate_main, [str(tmp_path / "dcl-none")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(f"error: {model}: trained by an earlier version")
