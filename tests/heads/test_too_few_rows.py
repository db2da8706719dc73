"""Too few rows: each case is one line naming the option and the counts, or a run that states its true counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from heads.cli import train_main
from heads.training.data import labelled_subset, stratified_split
from pipeline.errors import PipelineError
from tests.support.synthetic import write_synthetic_cache


def test_a_class_never_gives_its_last_training_row_to_validation():
    label = np.array([0, 1, 1, 2, 2, 2])
    train, val = stratified_split(label, 0.0, 0, per_class=5)
    assert sorted(label[val].tolist()) == [1, 2, 2]  # class 0 keeps its one row; the others keep one each
    assert sorted(label[train].tolist()) == [0, 1, 2]
    with pytest.raises(PipelineError, match=r"--val-fraction 0\.5: no validation row can be held out: every one of "
                                            r"the 3 classes has a single training image"):
        stratified_split(np.array([0, 1, 2]), 0.5, 0)
    assert labelled_subset(np.array([0, 1]), np.zeros(0, dtype=np.int64), 1, 0)[0].tolist() == []


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    d = tmp_path_factory.mktemp("few")
    return {"one": write_synthetic_cache(d / "one.h5", "train", num_classes=4, per_class=1, dim=8),
            "three": write_synthetic_cache(d / "three.h5", "train", num_classes=4, per_class=3, dim=8),
            "test": write_synthetic_cache(d / "test.h5", "test", num_classes=4, per_class=2, dim=8, seed=1, first_id=100)}


@pytest.mark.parametrize("k", ["all", "1"])
def test_one_training_image_per_class_is_one_line_at_every_k(caches, tmp_path, k):
    argv = ["--train", str(caches["one"]), "--test", str(caches["test"]), "--out", str(tmp_path), "--aux", "none",
            "--val-per-class", "1", "--labels-per-class", k, "--epochs", "1", "--quiet"]
    result = CliRunner().invoke(train_main, argv)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: --val-per-class 1: no validation row can be held out")


def test_a_clamped_validation_count_is_said_and_recorded_as_used(caches, tmp_path):
    argv = ["--train", str(caches["three"]), "--test", str(caches["test"]), "--out", str(tmp_path), "--aux", "none",
            "--val-per-class", "5", "--labels-per-class", "1", "--epochs", "1", "--quiet"]
    result = CliRunner().invoke(train_main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "note: --val-per-class 5: some classes have too few training images and hold out 2" in result.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    used = json.loads((run / "config.json").read_text())["labels"]["per_class"]
    assert used["val"] == {"min_per_class": 2, "max_per_class": 2, "classes_without_any": 0}
    assert used["train"]["min_per_class"] == 1 and used["labelled"]["max_per_class"] == 1


@pytest.mark.parametrize("seed", ["-1", "99999999999999"])
def test_a_seed_numpy_or_torch_cannot_take_is_one_line(caches, tmp_path, seed):
    argv = ["--train", str(caches["three"]), "--test", str(caches["test"]), "--out", str(tmp_path), "--seed", seed]
    result = CliRunner().invoke(train_main, argv)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"Invalid value for '--seed': {seed} is not in the range 0<=x<=2147483647" in result.output
