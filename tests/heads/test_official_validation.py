"""A cache holding its dataset's official validation split (e.g. FGVC-Aircraft trainval) is split by it,
whatever --val-fraction says; a CUB cache keeps the stratified draw."""

from __future__ import annotations

from tests.support.specs import spec_of

import numpy as np

from heads.training.rows import split_rows
from pipeline.reader import read_cache
from tests.support.caches import fill, layout

OPTIONS = {"seed": 0, "val_fraction": 0.4, "val_per_class": None, "labels_per_class": "all"}


def test_official_val_rows_are_the_validation_rows(tmp_path):
    source = {"dataset": "aircraft", "level": "variant", "official_splits": ["train", "val"], "official_validation": "val"}
    lay = layout("trainval", ids=range(1, 9), source=source)
    lay.official_split = ["train", "train", "val", "train", "val", "train", "train", "val"]
    fill(tmp_path / "trainval.h5", lay).finish()
    rows = split_rows(read_cache(tmp_path / "trainval.h5"), spec_of(OPTIONS))
    assert rows["val"].tolist() == [2, 4, 7] and rows["train"].tolist() == [0, 1, 3, 5, 6]
    assert rows["validation"] == "the dataset's official val split"


def test_cub_cache_keeps_the_stratified_split(tmp_path):
    fill(tmp_path / "train.h5", layout(ids=range(1, 11))).finish()
    rows = split_rows(read_cache(tmp_path / "train.h5"), spec_of(OPTIONS))
    assert rows["validation"] == "--val-fraction 0.4 of each class" and len(rows["val"]) == 4
    assert not np.intersect1d(rows["val"], rows["train"]).size
