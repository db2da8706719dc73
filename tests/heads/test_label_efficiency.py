"""--labels-per-class: nested labelled draws, which loss sees which rows, honest validation, the curve."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import heads.methods.dcl
import heads.methods.pirl
from heads.cli import sweep_main, train_main
from heads.cells import parse_k as parse_labels_per_class
from heads.training.data import labelled_subset, stratified_split
from heads.methods.pirl import PIRL, MLPBaseline
from tests.support.synthetic import write_synthetic_cache

C, D = 4, 16
FAST = ["--epochs", "2", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("le")
    kw = dict(num_classes=C, dim=D, separation=0.5, spatial_shape=(2, 2))
    return {"train": write_synthetic_cache(d / "train.h5", "train", per_class=15, seed=0, **kw),
            "test": write_synthetic_cache(d / "test.h5", "test", per_class=10, seed=1, first_id=1000, **kw)}


def train(caches, out: Path, *args: str):
    argv = ["--train", str(caches["train"]), "--test", str(caches["test"]), "--out", str(out), *FAST, *args]
    return CliRunner().invoke(train_main, argv, catch_exceptions=False)


def the_run(out: Path) -> tuple[Path, dict]:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run, json.loads((run / "config.json").read_text())


def test_labelled_sets_are_nested_across_k_and_differ_across_seeds():
    label = np.repeat(np.arange(5), 12)
    rows, _ = stratified_split(label, 0.2, seed=3)
    sets = {k: set(labelled_subset(label, rows, k, seed=3)[0]) for k in (1, 2, 5, 9)}
    assert sets[1] < sets[2] < sets[5] < sets[9]
    assert all(np.bincount(label[list(sets[k])]).tolist() == [k] * 5 for k in (1, 2, 5, 9))
    assert set(labelled_subset(label, rows, 5, seed=4)[0]) != sets[5]
    assert not sets[9] - set(rows)  # labelled rows are training rows, never validation rows
    everything, short = labelled_subset(label, rows, 50, seed=3)
    assert set(everything) == set(rows) and short == {c: int((label[rows] == c).sum()) for c in range(5)}
    assert labelled_subset(label, rows, None, seed=3)[0].tolist() == rows.tolist()


@pytest.mark.parametrize("text, ok", [("all", None), ("3", 3), ("0", "positive"), ("-2", "positive"), ("x", "positive")])
def test_labels_per_class_values(text, ok):
    if isinstance(ok, str):
        with pytest.raises(ValueError, match=ok):
            parse_labels_per_class(text)
    else:
        assert parse_labels_per_class(text) == ok


@pytest.mark.parametrize("value", ["0", "-1"])
def test_k_zero_or_negative_is_one_line(caches, tmp_path, capsys, value):
    from pipeline.errors import run_cli

    argv = ["--train", str(caches["train"]), "--test", str(caches["test"]), "--out", str(tmp_path),
            "--labels-per-class", value]
    with pytest.raises(SystemExit) as exit_:
        run_cli(train_main, argv)  # the console entry point's path
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and "--labels-per-class" in err[0] and "positive integer" in err[0]
    assert not any(tmp_path.iterdir())


def test_k_above_a_class_count_keeps_all_and_says_so(caches, tmp_path):
    result = train(caches, tmp_path, "--aux", "none", "--labels-per-class", "20")
    assert result.exit_code == 0, result.output
    assert "--labels-per-class 20: 4 classes have fewer training rows and keep all of them" in result.output
    _, config = the_run(tmp_path)
    assert config["labels"]["labelled_rows"] == config["rows"]["train"] and config["labels"]["unlabelled_rows"] == 0
    assert len(config["labels"]["classes_with_fewer_than_k_rows"]) == C


def rows_of(caches, image_ids) -> set[int]:
    from pipeline.reader import read_cache

    ids = read_cache(caches["train"], kinds=[]).image_id
    return set(np.flatnonzero(np.isin(ids, image_ids)).tolist())


def spy(monkeypatch, cls, name, store):
    real = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        store.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapper)


@pytest.mark.parametrize("aux", ["none", "pirl"])
def test_cross_entropy_sees_labelled_rows_only_and_pirl_sees_every_training_row(caches, tmp_path, monkeypatch, aux):
    batches, bank_queries, targets = [], [], []
    spy(monkeypatch, PIRL if aux == "pirl" else MLPBaseline, "losses", batches)
    spy(monkeypatch, heads.methods.pirl.PIRLLoss, "forward", bank_queries)
    real_ce = torch.nn.functional.cross_entropy

    def ce(logits, target, *args, **kwargs):
        targets.append(target.clone())
        return real_ce(logits, target, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", ce)
    result = train(caches, tmp_path, "--aux", aux, "--labels-per-class", "2", "--val-per-class", "2")
    assert result.exit_code == 0, result.output
    run, config = the_run(tmp_path)
    labelled = rows_of(caches, config["labels"]["labelled_image_ids"])
    val = rows_of(caches, config["val_image_ids"])
    assert len(labelled) == 2 * C and len(val) == 2 * C and config["labels"]["val_per_class"] == 2
    assert config["labels"]["unlabelled_rows"] == 15 * C - 2 * C - 2 * C
    seen_by_ce: set[int] = set()
    for (batch,) in batches:
        lab = batch["labelled"]
        seen_by_ce |= set(batch["index"][lab].tolist())
        assert (batch["label"][~lab] == -1).all()  # an unlabelled row carries no label at all
        assert (batch["label"][lab] >= 0).all()
    assert seen_by_ce == labelled  # every labelled row, and nothing else, reaches the cross-entropy
    assert all((t >= 0).all() for t in targets)  # no CE call got an unlabelled row's -1
    history = list(csv.DictReader(open(run / "history.csv")))
    steps = -(-(15 * C - 2 * C) // 16)  # epochs counted on every training row
    assert int(history[0]["rows_ce"]) == steps * 2 * C  # each step: the whole labelled set (8 < batch 16)
    if aux == "pirl":
        covered = set()
        for f, g, index in bank_queries:
            covered |= set(index.tolist())
        trained = set(range(15 * C)) - val
        assert covered == trained  # the PIRL loss covers labelled and unlabelled rows alike
        assert int(history[0]["rows_pirl"]) == len(trained)
        state = torch.load(run / "model.pt", weights_only=True)["state_dict"]
        assert set(torch.nonzero(state["pirl.active"])[:, 0].tolist()) == trained  # the bank's negatives: all of them
    else:
        assert not batches[0][0]["ssl"].any()  # the baseline gets the labelled stream alone


def test_dcl_label_free_losses_see_unlabelled_rows(caches, tmp_path, monkeypatch):
    cls_calls, adv_calls, align_calls, batches = [], [], [], []
    spy(monkeypatch, heads.methods.dcl.DCL, "classification_loss", cls_calls)
    spy(monkeypatch, heads.methods.dcl.DCL, "adversarial_loss", adv_calls)
    spy(monkeypatch, heads.methods.dcl.DCL, "alignment_loss", align_calls)
    spy(monkeypatch, heads.methods.dcl.DCL, "losses", batches)
    result = train(caches, tmp_path, "--aux", "dcl", "--labels-per-class", "1")
    assert result.exit_code == 0, result.output
    _, config = the_run(tmp_path)
    labelled = rows_of(caches, config["labels"]["labelled_image_ids"])
    unlabelled_seen = set()
    for (batch,), (z, label), (za, _), (hmap, perm) in zip(batches, cls_calls, adv_calls, align_calls):
        lab, ssl = batch["labelled"], batch["ssl"]
        assert len(z) == 2 * int(lab.sum()) and torch.equal(label, batch["label"][lab])
        assert (label >= 0).all()
        assert len(za) == 2 * int(ssl.sum()) and len(hmap) == 2 * int(ssl.sum())
        unlabelled_seen |= set(batch["index"][ssl].tolist()) - labelled
    assert len(unlabelled_seen) == config["labels"]["unlabelled_rows"] > 0


def test_swap_head_needs_labels_and_sees_labelled_rows_only(caches, tmp_path, monkeypatch):
    adv_calls, batches = [], []
    spy(monkeypatch, heads.methods.dcl.DCL, "adversarial_loss", adv_calls)
    spy(monkeypatch, heads.methods.dcl.DCL, "losses", batches)
    result = train(caches, tmp_path, "--aux", "dcl", "--dcl-adv", "swap", "--labels-per-class", "1")
    assert result.exit_code == 0, result.output
    for (batch,), (z, label) in zip(batches, adv_calls):
        assert len(z) == 2 * int(batch["labelled"].sum()) and (label >= 0).all()


def test_all_labels_is_the_ordinary_run(caches, tmp_path):
    """--labels-per-class all (the default) trains exactly as before: one stream, every row labelled."""
    a = train(caches, tmp_path / "a", "--aux", "pirl")
    b = train(caches, tmp_path / "b", "--aux", "pirl", "--labels-per-class", "all")
    assert a.exit_code == b.exit_code == 0
    ma = json.loads((the_run(tmp_path / "a")[0] / "metrics.json").read_text())
    mb = json.loads((the_run(tmp_path / "b")[0] / "metrics.json").read_text())
    assert ma["val"] == mb["val"] and ma["test"] == mb["test"]


@pytest.mark.slow
def test_sweep_over_k_selects_per_k_and_draws_the_curve(caches, tmp_path):
    argv = ["--train", str(caches["train"]), "--test", str(caches["test"]), "--out", str(tmp_path), "--name", "k",
            "--aux", "none,pirl", "--aux-weight", "0.1,1", "--labels-per-class", "1,2,all", "--val-per-class", "1",
            "--seeds", "0,1", *FAST]
    result = CliRunner().invoke(sweep_main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    root = tmp_path / "k"
    entries = json.loads((root / "selection.json").read_text())["selected"]
    assert sorted((e["aux"], e["labels_per_class"]) for e in entries) == sorted(
        (a, k) for a in ("none", "pirl") for k in ("1", "2", "all"))
    for e in entries:  # each K's selection is among that K's runs only
        assert all(f"labels-per-class={e['labels_per_class']}_" in run for run in e["runs"])
    with open(root / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["aux"], r["labels_per_class"]) for r in rows][:2] == [("none", "1"), ("pirl", "1")]
    assert all(r["baseline"] == "none" for r in rows if r["aux"] == "pirl")
    md = (root / "summary.md").read_text()
    assert "## Label efficiency" in md and "| method | 1 | 2 | all |" in md
    assert (root / "labels.png").stat().st_size > 10_000
    # the same seed labels the same rows for both methods at a K, nested across K
    configs = {}
    for e in entries:
        for run in e["runs"]:
            c = json.loads((root / run / "config.json").read_text())
            configs[e["aux"], e["labels_per_class"], c["options"]["seed"]] = c["labels"]["labelled_image_ids"]
    for seed in (0, 1):
        assert configs["none", "1", seed] == configs["pirl", "1", seed]
        assert set(configs["pirl", "1", seed]) < set(configs["pirl", "2", seed])
