"""What a cache records of its dataset: CUB's config (and config_hash) unchanged, another dataset's
`source` and per-row `official_split`, and train/test pairing refusing caches of two datasets."""

from __future__ import annotations

import pytest

from pipeline.datasets import cache_official_split, cache_source, load_dataset
from pipeline.errors import PipelineError
from pipeline.reader import read_cache
from pipeline.sample import make_sample_dataset
from pipeline.schema import CacheConfig, cache_dataset, config_hash
from tests.support.caches import fill, layout

CONFIG = dict(backbone="random-resnet50v2", image_size=64, split="train", seed=0,
              views={"kinds": ["original", "jigsaw", "rcm"], "num_views": 2, "jigsaw_grid": 3, "rcm_grid": 7, "rcm_k": 2.0},
              spatial=False, preprocessing="decode_rgb+resize_bilinear_antialias+scale_0_1", dataset="0123456789abcdef",
              precision="fp32")


def test_cub_config_and_hash_are_unchanged():
    """Pinned: the hash this config had before datasets other than CUB existed."""
    config = CacheConfig(**CONFIG).as_dict()
    assert "source" not in config and cache_dataset(config) == "cub"
    assert config_hash(config) == "fb22d738510ddc6e"


def test_other_datasets_record_their_source(tmp_path, sample_root):
    assert cache_source(load_dataset("cub", sample_root, "train")) is None
    assert cache_official_split(load_dataset("cub", sample_root, "train")) is None
    root = make_sample_dataset(tmp_path, 3, 4, seed=0, min_side=32, max_side=40, layout="aircraft")
    data = load_dataset("aircraft", root, "trainval", level="family")
    source = cache_source(data)
    assert source == {"dataset": "aircraft", "level": "family", "official_splits": ["train", "val"],
                      "official_validation": "val"}
    config = CacheConfig(**CONFIG, source=source).as_dict()
    assert cache_dataset(config) == "aircraft" and config_hash(config) != "fb22d738510ddc6e"
    assert cache_official_split(data) == list(data.official_split)
    dogs = make_sample_dataset(tmp_path, 3, 4, seed=0, min_side=32, max_side=40, layout="dogs")
    assert cache_official_split(load_dataset("dogs", dogs, "train")) is None  # no official val split: no column
    assert cache_source(load_dataset("dogs", dogs, "train"))["official_validation"] is None


def test_official_split_round_trip(tmp_path):
    lay = layout("trainval")
    lay.official_split = ["train", "val", "train", "val", "train"]
    fill(tmp_path / "a.h5", lay).finish()
    assert read_cache(tmp_path / "a.h5").official_split == ["train", "val", "train", "val", "train"]
    fill(tmp_path / "b.h5", layout()).finish()
    assert read_cache(tmp_path / "b.h5").official_split is None


def test_pairing_refuses_caches_of_two_datasets(tmp_path):
    from heads.training.pairing import check_compatible

    aircraft = {"dataset": "aircraft", "level": "variant", "official_splits": ["train", "val"], "official_validation": "val"}
    fill(tmp_path / "cub-train.h5", layout()).finish()
    fill(tmp_path / "air-train.h5", layout(source=aircraft)).finish()
    fill(tmp_path / "air-test.h5", layout("test", ids=(6, 7), source={**aircraft, "official_splits": ["test"]})).finish()
    fill(tmp_path / "fam-test.h5", layout("test", ids=(6, 7), source={**aircraft, "level": "family"})).finish()
    check_compatible(read_cache(tmp_path / "air-train.h5"), read_cache(tmp_path / "air-test.h5"))
    with pytest.raises(PipelineError) as e:
        check_compatible(read_cache(tmp_path / "cub-train.h5"), read_cache(tmp_path / "air-test.h5"))
    assert "are caches of two datasets (cub vs aircraft)" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(PipelineError, match=r"read aircraft differently: level \('variant' vs 'family'\)"):
        check_compatible(read_cache(tmp_path / "air-train.h5"), read_cache(tmp_path / "fam-test.h5"))


def test_official_validation_rows(tmp_path):
    source = {"dataset": "aircraft", "level": "variant", "official_splits": ["train", "val"], "official_validation": "val"}
    lay = layout("trainval", source=source)
    lay.official_split = ["train", "val", "train", "val", "train"]
    fill(tmp_path / "trainval.h5", lay).finish()
    rows, val = read_cache(tmp_path / "trainval.h5").official_validation_rows()
    assert rows.tolist() == [0, 2, 4] and val.tolist() == [1, 3]
    only_train = layout("train", source={**source, "official_splits": ["train"]})
    only_train.official_split = ["train"] * 5
    fill(tmp_path / "train.h5", only_train).finish()
    assert read_cache(tmp_path / "train.h5").official_validation_rows() is None  # nothing to select on: None
    fill(tmp_path / "cub.h5", layout()).finish()
    assert read_cache(tmp_path / "cub.h5").official_validation_rows() is None


def test_merged_shards_keep_the_official_split(tmp_path):
    """merge-caches concatenates official_split with the other row metadata (no TensorFlow: hand-filled shards)."""
    import numpy as np

    from extract.sharding.merge import merge_shards
    from pipeline.schema import Shard, dataset_fingerprint

    ids = np.arange(1, 7)
    official = ["train", "val", "train", "val", "train", "val"]
    whole = layout("trainval", ids=ids, source={"dataset": "flowers102", "official_splits": ["train", "val"],
                                                 "official_validation": "val"})
    whole.config["dataset"] = dataset_fingerprint(whole.image_id, whole.label, whole.paths)
    paths = []
    for index, (lo, hi) in enumerate(((0, 3), (3, 6))):
        part = layout("trainval", ids=ids[lo:hi])
        part.config, part.shard, part.official_split = whole.config, Shard(index, 2, lo, hi, 6, 1), official[lo:hi]
        paths.append(tmp_path / f"t.shard-{index}-of-2.h5")
        fill(paths[-1], part).finish()
    merge_shards(tmp_path / "t.h5", paths)
    merged = read_cache(tmp_path / "t.h5")
    assert merged.official_split == official and merged.image_id.tolist() == ids.tolist()
