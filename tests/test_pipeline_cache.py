"""Cache format: refusal names differing keys, incomplete files are never read as complete."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cache import CacheLayout, CacheWriter, check_compatible, read_cache
from pipeline.errors import PipelineError
from pipeline.views import make_permutations

VIEWS = {"kinds": ["original", "jigsaw"], "num_views": 2, "jigsaw_grid": 3, "rcm_grid": 7, "rcm_k": 2}


def layout(split="train", ids=(1, 2, 3, 4, 5), **config) -> CacheLayout:
    ids = np.asarray(ids)
    cfg = {"backbone": "synthetic", "image_size": 64, "split": split, "seed": 0, "views": dict(VIEWS),
           "spatial": False, "preprocessing": "p", "dataset": "d", **config}
    return CacheLayout(cfg, ids, ids % 2, [f"c/{i}.jpg" for i in ids], ["001.A", "002.B"], 4,
                       {"jigsaw": make_permutations("jigsaw", 0, ids, 2, 3)})


def fill(path, lay, rows=None):
    w = CacheWriter.open(path, lay)
    for r in rows if rows is not None else [np.arange(len(lay.image_id))]:
        w.write(r, {"features/original": np.full((len(r), 4), r[:, None], np.float32),
                    "features/jigsaw": np.ones((len(r), 2, 4), np.float32)})
    return w


def test_roundtrip(tmp_path):
    fill(tmp_path / "c.h5", layout()).finish()
    c = read_cache(tmp_path / "c.h5")
    assert c.features["original"][:, 0].tolist() == [0, 1, 2, 3, 4]
    assert c.permutations["jigsaw"].shape == (5, 2, 9) and c.paths[0] == "c/1.jpg" and c.num_classes == 2


def test_incomplete_cache_is_refused_and_resumes(tmp_path):
    w = fill(tmp_path / "c.h5", layout(), rows=[np.arange(0, 2)])
    w.close()
    with pytest.raises(PipelineError, match=r"incomplete cache \(2/5 rows"):
        read_cache(tmp_path / "c.h5")
    w = CacheWriter.open(tmp_path / "c.h5", layout())
    assert w.status == "resumed" and w.pending().tolist() == [2, 3, 4]
    w.write(np.arange(2, 5), {"features/original": np.zeros((3, 4)), "features/jigsaw": np.zeros((3, 2, 4))})
    w.finish()
    assert CacheWriter.open(tmp_path / "c.h5", layout()).status == "complete"


def test_different_config_is_refused_with_keys(tmp_path):
    fill(tmp_path / "c.h5", layout()).finish()
    other = layout(image_size=96, views=dict(VIEWS, num_views=3))
    with pytest.raises(PipelineError) as e:
        CacheWriter.open(tmp_path / "c.h5", other)
    assert "image_size (64 in the file, 96 asked for)" in str(e.value) and "views.num_views" in str(e.value)
    w = CacheWriter.open(tmp_path / "c.h5", other, overwrite=True)
    assert w.status == "new"
    w.close()


def test_foreign_file_is_refused(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    with pytest.raises(PipelineError, match="not an HDF5 file"):
        read_cache(tmp_path / "x.h5")
    with pytest.raises(PipelineError, match="not a feature cache"):
        CacheWriter.open(tmp_path / "x.h5", layout())


def test_check_compatible(tmp_path):
    fill(tmp_path / "train.h5", layout()).finish()
    fill(tmp_path / "test.h5", layout("test", ids=(6, 7))).finish()
    fill(tmp_path / "other.h5", layout("test", ids=(6, 7), backbone="other")).finish()
    fill(tmp_path / "overlap.h5", layout("test", ids=(5, 6))).finish()
    train = read_cache(tmp_path / "train.h5")
    check_compatible(train, read_cache(tmp_path / "test.h5"))
    fill(tmp_path / "spatial.h5", layout("test", ids=(6, 7), spatial=True)).finish()
    check_compatible(train, read_cache(tmp_path / "spatial.h5"))  # pooled features are the same either way
    with pytest.raises(PipelineError, match="backbone"):
        check_compatible(train, read_cache(tmp_path / "other.h5"))
    with pytest.raises(PipelineError, match="share 1 image ids"):
        check_compatible(train, read_cache(tmp_path / "overlap.h5"))
