"""The jigsaw-patches view kind (PIRL's paper form): crops, their features, resume and shards."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tensorflow as tf

from extract.inputs import ViewSpec
from extract.inputs import load_image
from extract.run import extract_split
from extract.sharding.merge import merge_shards
from extract.sharding.plan import default_shard_path
from pipeline.cub import load_cub
from pipeline.reader import read_cache
from pipeline.views import cut_patches, make_patch_views, original_positions, patch_geometry
from tests.support import IMAGE_SIZE  # 64 px: cells of 21 px, 16 px patches, jitter 0..5

pytestmark = pytest.mark.tf  # needs TensorFlow (stage 1)

SPEC = ViewSpec(("original", "patches"), num_views=2, jigsaw_grid=3, rcm_grid=7, rcm_k=2)
BATCH = 38  # 1 + 2 x 9 = 19 inputs per image -> blocks of 2 images; the 6 training rows are 3 blocks
NAMES = ("features/original", "features/patches", "permutations/patches", "offsets/patches", "image_id", "done")


def extract(data, net, out, **kw):
    return extract_split(data, net, out, SPEC, IMAGE_SIZE, seed=0, spatial=False, batch_size=BATCH, progress=False,
                         **kw)


@pytest.fixture(scope="module")
def train(sample_root):
    return load_cub(sample_root, "train")


@pytest.fixture(scope="module")
def cache(train, backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("patches") / "train.h5"
    assert extract(train, backbone, out).status == "new"
    return out


def assert_same_arrays(a_path, b_path):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        for name in NAMES:
            assert np.array_equal(a[name][...], b[name][...]), name
        assert a.attrs["config_hash"] == b.attrs["config_hash"] and a.attrs["complete"]


def test_schema_and_config(cache, train):
    c = read_cache(cache)
    assert c.features["patches"].shape == (len(train), 2, 9, c.feature_dim)
    assert c.features["patches"].dtype == np.float16
    assert c.permutations["patches"].shape == (len(train), 2, 9)
    assert c.offsets["patches"].shape == (len(train), 2, 9, 2)
    views = c.config["views"]
    assert (views["patch_grid"], views["patch_size"], views["patch_jitter"]) == (3, 16, 5) == (3, *patch_geometry(64)[1:])
    perms, offsets = make_patch_views(0, c.image_id, 2, IMAGE_SIZE)  # a pure function of (seed, image, view)
    assert np.array_equal(perms, c.permutations["patches"]) and np.array_equal(offsets, c.offsets["patches"])
    # position p's crop lies inside original cell perm[p], within the jitter
    shift = offsets - original_positions(perms, 3) * 21
    assert shift.min() >= 0 and shift.max() <= 5


def test_cached_patch_features_equal_the_backbone_on_the_stored_crops(cache, train, backbone):
    c = read_cache(cache)
    for row in (0, 5):
        image = load_image(tf.constant(str(train.image_file(row))), IMAGE_SIZE).numpy()
        for v in range(2):
            crops = cut_patches(image, c.offsets["patches"][row, v], 16)  # in the stored (shuffled) order
            want = backbone.run(tf.constant(crops))[0].numpy()
            got = c.features["patches"][row, v].astype(np.float32)
            cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
            assert cos.min() > 0.999, (row, v, cos.min())
            np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2 * np.abs(want).max())


def test_interrupted_run_resumes_to_the_same_file(train, backbone, cache, tmp_path):
    def stop(i):
        if i == 0:
            raise KeyboardInterrupt

    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        extract(train, backbone, out, after_batch=stop)
    with h5py.File(out, "r") as f:
        assert not f.attrs["complete"] and f["done"][...].tolist() == [True] * 2 + [False] * 4
    result = extract(train, backbone, out)
    assert result.status == "resumed" and result.rows == len(train) - 2
    assert_same_arrays(out, cache)


def test_merged_shards_equal_an_unsharded_run(train, backbone, cache, tmp_path):
    out = tmp_path / "train.h5"
    paths = [default_shard_path(out, i, 2) for i in range(2)]
    for i, path in enumerate(paths):
        assert extract(train, backbone, path, shard=(i, 2)).status == "new"
    merge_shards(out, paths)
    assert_same_arrays(out, cache)
