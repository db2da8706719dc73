"""Stage 1 through a torch backbone (a tiny plain-PyTorch model, so neither torchvision nor timm is needed): the
same cache contract as TF-Hub's, equal to the model's own output on the stored crops, resumable, shardable,
labelled untrained, never paired with another backbone's cache, and without TensorFlow in the process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from extract.config import ViewSpec
from extract.images import load_rgb
from extract.run import extract_split
from extract.sharding.merge import merge_shards
from heads.training.pairing import check_compatible
from pipeline.cub import load_cub
from pipeline.errors import PipelineError
from pipeline.reader import read_cache
from pipeline.views import cut_patches, make_patch_views, make_permutations
from tests.extract.torch_support import stored_inputs, tiny_backbone
from tests.support.caches import assert_same_cache

SIZE = 64  # not divisible by 3 or 7: the tiles' leftover border stays in place
SPEC = ViewSpec(("original", "jigsaw", "rcm", "patches"), num_views=2, jigsaw_grid=3, rcm_grid=7, rcm_k=2)
BATCH = 46  # 23 inputs per image (1 + 2 + 2 + 2 x 9 patches): blocks of 2 images, the 6 rows in 3 blocks
ROOT = Path(__file__).resolve().parents[2]


def extract(data, net, out, **kw):
    return extract_split(data, net, out, SPEC, SIZE, seed=0, spatial=True, batch_size=BATCH, progress=False, **kw)


@pytest.fixture(scope="module")
def train(sample_root):
    return load_cub(sample_root, "train")


@pytest.fixture(scope="module")
def net():
    return tiny_backbone(SIZE)


@pytest.fixture(scope="module")
def cache(train, net, tmp_path_factory):
    out = tmp_path_factory.mktemp("torch") / "train.h5"
    assert extract(train, net, out).status == "new"
    return out


def test_cache_equals_the_model_on_the_stored_crops(cache, train, net):
    with h5py.File(cache, "r") as f:
        a = {name: f[name][...] for name in ("features/original", "features/jigsaw", "features/rcm", "features/patches",
                                             "spatial/original", "spatial/rcm", "permutations/jigsaw",
                                             "permutations/rcm", "offsets/patches")}
    _, patch, _ = SPEC.patch_geometry(SIZE)
    for i in range(len(train)):
        image = load_rgb(str(train.image_file(i)), SIZE)
        pooled, maps = net.embed(stored_inputs(image, a["permutations/jigsaw"][i], a["permutations/rcm"][i], 3, 7),
                                 want_maps=True)
        np.testing.assert_allclose(a["features/original"][i], pooled[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a["features/jigsaw"][i], pooled[1:3], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a["features/rcm"][i], pooled[3:5], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a["spatial/original"][i], maps[0], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(a["spatial/rcm"][i], maps[3:5], rtol=1e-3, atol=1e-3)
        for v in range(SPEC.num_views):  # each patch crop through the model at its own size, in the stored order
            crops = cut_patches(image, a["offsets/patches"][i, v], patch)
            np.testing.assert_allclose(a["features/patches"][i, v], net.embed(crops)[0], rtol=2e-3, atol=1e-3)
    # the pooled vector is the mean of the stored map (float16 rounding aside), as the cache says
    np.testing.assert_allclose(a["spatial/original"].astype(np.float32).mean(axis=(1, 2)), a["features/original"],
                               rtol=1e-2, atol=1e-3)


def test_views_and_permutations_are_the_contracts_for_the_seed(cache, train):
    """The same functions of (seed, image id, view) as the TF-Hub path: caches of two backbones pair row for row."""
    perms, offsets = make_patch_views(0, train.image_id, SPEC.num_views, SIZE)
    with h5py.File(cache, "r") as f:
        assert np.array_equal(f["permutations/jigsaw"][...], make_permutations("jigsaw", 0, train.image_id, 2, 3))
        assert np.array_equal(f["permutations/rcm"][...], make_permutations("rcm", 0, train.image_id, 2, 7, 2))
        assert np.array_equal(f["permutations/patches"][...], perms)
        assert np.array_equal(f["offsets/patches"][...], offsets)


def test_config_names_the_framework_and_the_untrained_weights(cache, net):
    with h5py.File(cache, "r") as f:
        config = json.loads(f.attrs["config"])
        assert f.attrs["backbone"] == "test:tiny" and f.attrs["backbone_weights"] == "random (untrained)"
        assert f.attrs["spatial_activation"] == "conv: the last ReLU map; features/original is its mean over h, w"
        assert f.attrs["feature_dim"] == 8 and f["spatial/original"].shape == (6, 16, 16, 8)
    assert config["model"] == {"framework": "torch", "library": "test", "architecture": "tiny", "weights": "random",
                               "feature_dim": 8, "grid": [16, 16]}
    assert config["preprocessing"] == ("decode_rgb8(exif=ignored,alpha=dropped,16bit=v/257,float=0..1)"
                                       "+resize_bilinear_antialias_pil+uint8+scale_0_1"
                                       "+normalize(mean=0.485,0.456,0.406;std=0.229,0.224,0.225)")
    assert net.untrained and read_cache(cache).untrained


def test_interrupted_run_resumes_to_the_same_file(cache, train, net, tmp_path):
    def stop(i):
        if i == 1:
            raise KeyboardInterrupt

    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        extract(train, net, out, after_batch=stop)
    with h5py.File(out, "r") as f:
        assert not f.attrs["complete"] and f["done"][...].tolist() == [True] * 4 + [False] * 2
    result = extract(train, net, out)
    assert result.status == "resumed" and result.rows == 2
    assert_same_cache(cache, out)


def test_shards_merge_to_the_unsharded_cache(cache, train, net, tmp_path):
    paths = [tmp_path / f"train.shard-{i}-of-2.h5" for i in range(2)]
    for i, path in enumerate(paths):
        assert extract(train, net, path, shard=(i, 2)).status == "new"
    merge_shards(tmp_path / "merged.h5", paths)
    assert_same_cache(cache, tmp_path / "merged.h5")


def test_progress_lines_count_the_rows_computed_up_to_all_of_them(train, net, tmp_path, capsys):
    from pipeline.progress_lines import parse_progress_line

    extract(train, net, tmp_path / "lines.h5", progress_lines=True)
    said = [parse_progress_line(line) for line in capsys.readouterr().out.splitlines()]
    assert said and None not in said  # nothing else on stdout
    assert said[-1] == (len(train), len(train))  # the last line: every row computed
    assert [done for done, _total in said] == sorted(done for done, _total in said)


def test_other_weights_neither_resume_nor_pair(cache, train, net, sample_root, tmp_path):
    other = tiny_backbone(SIZE, seed=1, weights_id="sha256:" + "0" * 64)  # a weights file's record
    copy = tmp_path / "train.h5"
    shutil.copy(cache, copy)
    with pytest.raises(PipelineError, match=r"different configuration: model.weights \('random' in the file, 'sha256:0+'"):
        extract(train, other, copy)  # the same file, other weights: refused, key named
    test = tmp_path / "test.h5"
    extract(load_cub(sample_root, "test"), other, test)
    with pytest.raises(PipelineError, match=r"do not match: model \("):
        check_compatible(read_cache(cache), read_cache(test))
    extract(load_cub(sample_root, "test"), net, tmp_path / "test-same.h5")
    check_compatible(read_cache(cache), read_cache(tmp_path / "test-same.h5"))  # same backbone: they pair


def test_undecodable_image_is_named_and_earlier_rows_kept(sample_root, net, tmp_path):
    root = tmp_path / "CUB_200_2011"
    shutil.copytree(sample_root, root)
    data = load_cub(root, "train")
    (root / "images" / data.path[3]).write_bytes(b"this is not a jpeg")
    out = tmp_path / "bad.h5"
    with pytest.raises(PipelineError) as e:
        extract_split(data, net, out, ViewSpec(("original",), 1, 3, 7, 2), SIZE, 0, False, 1, progress=False)
    assert str(e.value).startswith(f"{root / 'images' / data.path[3]}: cannot decode image (image_id "
                                   f"{data.image_id[3]}): not an image file of a known format (JPEG, PNG, TIFF, GIF, WebP, BMP)")
    with h5py.File(out, "r") as f:
        assert not f.attrs["complete"] and f["done"][...].tolist() == [True] * 3 + [False] * 3


def test_a_torch_extraction_never_imports_tensorflow(sample_root, tmp_path):
    script = f"""
import sys
from extract.config import ViewSpec
from extract.run import extract_split, write_views_figure
from pipeline.cub import load_cub
from tests.extract.torch_support import tiny_backbone
data = load_cub({str(sample_root)!r}, "test")
spec = ViewSpec(("original", "rcm"), 1, 3, 7, 2)
extract_split(data, tiny_backbone(32), {str(tmp_path / 't.h5')!r}, spec, 32, 0, True, 8, progress=False)
write_views_figure(data, {str(tmp_path / 't.h5')!r}, spec, 32)
import extract.cli, extract.backbones  # the command's own modules too
print("tensorflow" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False" and (tmp_path / "t.views.png").is_file()


def test_the_schema_page_documents_what_a_torch_extraction_writes(cache):
    from tests.e2e.test_docs import check_against_schema

    check_against_schema(cache, {"always", "--views", "--spatial", "extract-features", "patches", "torch"})


@pytest.mark.tf
def test_views_rows_and_permutations_equal_the_tf_hub_paths_for_the_seed(cache, train, backbone, tmp_path):
    """The TF-Hub path (random-resnet50v2) and the torch path on one split, one seed: every dataset but the
    features is the same array, and the configs differ only in the backbone's own keys, so the rows pair."""
    tf_cache = tmp_path / "tf.h5"
    extract(train, backbone, tf_cache)
    with h5py.File(cache, "r") as t, h5py.File(tf_cache, "r") as f:
        shared = [name for name in ("image_id", "label", "path", "permutations/jigsaw", "permutations/rcm",
                                    "permutations/patches", "offsets/patches") if name in f]
        assert len(shared) == 7
        for name in shared:
            assert np.array_equal(t[name][...], f[name][...]), name
        for kind in ("original", "jigsaw", "rcm", "patches"):  # same shapes but the width
            assert t[f"features/{kind}"].shape[:-1] == f[f"features/{kind}"].shape[:-1], kind
        a, b = json.loads(t.attrs["config"]), json.loads(f.attrs["config"])
    assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {"backbone", "preprocessing", "model"}
