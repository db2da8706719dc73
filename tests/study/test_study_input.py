"""The study's side of issue 34: a folder dataset's val/ images are refused with how to use them (the study draws
validation from train/), a file in two splits is refused before any work, and the report states the input check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.datasets.synthetic import make_sample_layout
from pipeline.errors import PipelineError
from study.report.facts import input_check
from study.plan.make import read_splits
from study.spec import load_spec
from tests.study.conftest import spec_text


def folder_spec(tmp_path: Path, root: Path) -> Path:
    text = spec_text(root, tmp_path / "f", tmp_path / "out").replace("[dataset]\n", '[dataset]\nname = "folder"\n', 1)
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


@pytest.fixture
def folder_root(tmp_path) -> Path:
    return make_sample_layout("folder", tmp_path / "folder", classes=2, images_per_class=6, seed=1, min_side=16,
                              max_side=24)


def test_a_folder_val_split_is_refused_with_how_to_use_it(tmp_path, folder_root):
    with pytest.raises(PipelineError) as e:
        read_splits(load_spec(folder_spec(tmp_path, folder_root)))
    message = str(e.value)
    assert "images in the val split, which a study does not use" in message and "\n" not in message
    assert "move the val class folders' images into train/" in message and "--split trainval" in message


def test_without_val_the_folder_study_plans(tmp_path, folder_root):
    shutil.rmtree(folder_root / "val")
    splits, classes, _ = read_splits(load_spec(folder_spec(tmp_path, folder_root)))
    assert classes == 2 and splits["train"].images > 0


def test_a_file_in_two_splits_is_refused_before_any_work(tmp_path, folder_root):
    shutil.rmtree(folder_root / "val")
    rows = (folder_root / "labels.csv").read_text().splitlines()
    train_row = next(r for r in rows if r.endswith(",train"))
    (folder_root / "labels.csv").write_text("\n".join(rows + [train_row.rsplit(",", 1)[0] + ",test"]) + "\n")
    text = folder_spec(tmp_path, folder_root).read_text().replace("[backbone]\n", '[dataset.options]\ncsv = "labels.csv"\n[backbone]\n', 1)
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(PipelineError, match="one image in two splits"):
        read_splits(load_spec(tmp_path / "s.toml"))


def test_the_report_line_states_that_the_check_ran():
    found = {"files": 12, "identical_pairs": 1, "identical_across_splits": 1,
             "examples": [["test/a/y.png", "test", "train/a/x.png", "train"]]}
    config = json.dumps({"source": {"skipped": {"hidden": 2}}})
    line = input_check({"input_check": json.dumps(found), "config": config})
    assert line.startswith("ran over every split: 12 files, each listed once and in one split")
    assert "**1 pairs, 1 across splits**" in line and "hidden 2" in line
    assert input_check({}).startswith("not recorded")
