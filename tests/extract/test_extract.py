"""Stage 1 end to end on the synthetic sample with the random ResNet-50 v2 at 64 px."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tensorflow as tf

from extract.cli import extract_features
from extract.inputs import ViewSpec, load_image
from extract.run import extract_split
from pipeline.cub import load_cub
from pipeline.errors import PipelineError, run_cli
from pipeline.views import apply_permutation
from tests.support import IMAGE_SIZE  # the size the shared backbone fixture runs at

pytestmark = pytest.mark.tf  # needs TensorFlow (stage 1)

SPEC = ViewSpec(("original", "jigsaw", "rcm"), num_views=2, jigsaw_grid=3, rcm_grid=7, rcm_k=2)


def extract(data, net, out, spatial=False, batch_size=10, **kw):
    return extract_split(data, net, out, SPEC, IMAGE_SIZE, seed=0, spatial=spatial, batch_size=batch_size,
                         progress=False, **kw)


@pytest.fixture(scope="module")
def train(sample_root):
    return load_cub(sample_root, "train")


@pytest.fixture(scope="module")
def cache(train, backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("features") / "train.h5"
    result = extract(train, backbone, out, spatial=True)
    assert result.status == "new" and result.rows == len(train)
    return out


def test_schema(cache, train):
    n, v, d = len(train), SPEC.num_views, 2048
    with h5py.File(cache, "r") as f:
        shapes = {name: (f[name].shape, f[name].dtype) for name in (
            "image_id", "label", "path", "class_names", "features/original", "features/jigsaw", "features/rcm",
            "permutations/jigsaw", "permutations/rcm", "spatial/original", "spatial/rcm")}
        assert shapes["image_id"] == ((n,), np.int64) and shapes["label"] == ((n,), np.int64)
        assert shapes["features/original"] == ((n, d), np.float32)
        assert shapes["features/jigsaw"] == ((n, v, d), np.float32) and shapes["features/rcm"] == ((n, v, d), np.float32)
        assert shapes["permutations/jigsaw"] == ((n, v, 9), np.int16) and shapes["permutations/rcm"] == ((n, v, 49), np.int16)
        assert shapes["spatial/original"] == ((n, 2, 2, d), np.float16) and shapes["spatial/rcm"] == ((n, v, 2, 2, d), np.float16)
        assert f["image_id"][...].tolist() == train.image_id.tolist() and f["label"][...].tolist() == train.label.tolist()
        assert [p.decode() for p in f["path"][...]] == train.path
        for name in ("features/original", "features/jigsaw", "features/rcm"):
            assert np.isfinite(f[name][...]).all() and np.abs(f[name][...]).sum() > 0
        assert bool(f.attrs["complete"]) and f["done"][...].all()
        assert f.attrs["backbone"] == "random-resnet50v2" and "untrained" in f.attrs["backbone_weights"]
        assert f.attrs["spatial_activation"] == ("output: the model's 4-D output; features/original is its mean over "
                                                 "h, w (ResNet50V2 after its final post_bn + post_relu: post-norm)")
        for key in ("format_version", "image_size", "split", "seed", "views", "config_hash", "created_by"):
            assert key in f.attrs


def test_rows_equal_backbone_on_each_image(cache, train, backbone):
    with h5py.File(cache, "r") as f:
        original, jigsaw, rcm = f["features/original"][...], f["features/jigsaw"][...], f["features/rcm"][...]
        pj, pr = f["permutations/jigsaw"][...], f["permutations/rcm"][...]
        spatial = f["spatial/original"][...].astype(np.float32)
    for i in range(len(train)):
        image = load_image(tf.constant(str(train.image_file(i))), IMAGE_SIZE).numpy()
        views = [image, apply_permutation(image, pj[i, 1], 3), apply_permutation(image, pr[i, 0], 7)]
        direct, _ = backbone.run(tf.constant(np.stack(views)))
        direct = direct.numpy()
        np.testing.assert_allclose(original[i], direct[0], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(jigsaw[i, 1], direct[1], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(rcm[i, 0], direct[2], rtol=1e-3, atol=1e-4)
    # the pooled vector is the mean of the stored map (float16 rounding aside)
    np.testing.assert_allclose(spatial.mean(axis=(1, 2)), original, rtol=1e-2, atol=1e-2)


def test_interrupted_run_resumes_to_the_same_file(train, backbone, tmp_path, cache, monkeypatch):
    import time

    from pipeline.writer import CacheWriter

    def stop(i):
        if i == 1:
            raise KeyboardInterrupt

    real_write = CacheWriter.write

    def slow_write(self, rows, arrays):  # writes lag behind the model: batches are still queued at the interrupt
        time.sleep(0.2)
        real_write(self, rows, arrays)

    out = tmp_path / "resumed.h5"
    with monkeypatch.context() as m:
        m.setattr(CacheWriter, "write", slow_write)
        with pytest.raises(KeyboardInterrupt):
            extract(train, backbone, out, spatial=True, after_batch=stop)  # batch 10 -> 2 images per batch
    with h5py.File(out, "r") as f:  # both computed batches were written on the way out, the rest is not done
        assert not f.attrs["complete"] and f["done"][...].tolist() == [True] * 4 + [False] * 2
    result = extract(train, backbone, out, spatial=True)
    assert result.status == "resumed" and result.rows == len(train) - 4
    with h5py.File(out, "r") as a, h5py.File(cache, "r") as b:
        for name in ("features/original", "features/jigsaw", "features/rcm", "permutations/rcm", "spatial/rcm", "label"):
            assert np.array_equal(a[name][...], b[name][...]), name
        assert a.attrs["config_hash"] == b.attrs["config_hash"] and a.attrs["complete"]
    assert extract(train, backbone, out, spatial=True).status == "complete"


def test_a_cache_with_every_row_written_but_no_completion_mark_is_marked_complete_on_rerun(train, backbone, cache,
                                                                                          tmp_path):
    """A stop between the last row's write and the completion mark (kill -9, or any cache in that state): the rerun
    computes nothing and marks it complete (it crashed building an empty input pipeline)."""
    import shutil

    out = tmp_path / "marked.h5"
    shutil.copy(cache, out)
    with h5py.File(out, "r+") as f:
        f.attrs["complete"] = False
    result = extract(train, backbone, out, spatial=True)
    assert result.status == "resumed" and result.rows == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"] and f["done"][...].all()


def test_undecodable_image_is_named(sample_root, backbone, tmp_path):
    import shutil

    root = tmp_path / "CUB_200_2011"
    shutil.copytree(sample_root, root)
    data = load_cub(root, "train")
    (root / "images" / data.path[3]).write_bytes(b"this is not a jpeg")
    out = tmp_path / "bad.h5"
    with pytest.raises(PipelineError) as e:
        extract(data, backbone, out, batch_size=5)  # 5 inputs per image: 1 image per forward pass
    assert str(e.value) == (f"{root / 'images' / data.path[3]}: cannot decode image (image_id {data.image_id[3]}): "
                            "not an image file of a known format (JPEG, PNG, TIFF, GIF, WebP, BMP)")  # the contract's, both loaders
    with h5py.File(out, "r") as f:  # rows before the bad one are kept for a resume
        assert not f.attrs["complete"] and f["done"][...].tolist() == [True] * 3 + [False] * 3


def cli(*args):
    with pytest.raises(SystemExit) as e:
        run_cli(extract_features, list(args))
    return e.value.code


def test_cli_summary_and_rerun_is_noop(sample_root, model_cache, tmp_path, capsys, monkeypatch):
    import extract.precision
    import pipeline.precision

    monkeypatch.setattr(pipeline.precision, "cpu_has_native_bf16", lambda *a: False)  # a CPU without bfloat16
    monkeypatch.setattr(extract.precision, "list_gpus", lambda: [])
    args = ["--data-root", str(sample_root), "--split", "test", "--out", str(tmp_path / "t.h5"), "--backbone",
            "random-resnet50v2", "--image-size", str(IMAGE_SIZE), "--num-views", "1", "--model-cache",
            str(model_cache), "--precision", "auto", "--quiet"]
    assert cli(*args) == 0
    out = capsys.readouterr().out
    assert "6 rows" in out and "images/s" in out and "UNTRAINED" in out and "MiB" in out
    assert "precision fp32 (--precision auto)" in out  # auto falls back to float32 there, and says so
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert '"precision": "fp32"' in f.attrs["config"] and f["features/jigsaw"].dtype == np.float32
    assert cli(*args) == 0
    rerun = capsys.readouterr().out
    assert "already complete" in rerun and "precision fp32" in rerun
    assert cli(*args[:-1], "--rcm-grid", "5", "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "views.rcm_grid (7 in the file, 5 asked for)" in err


@pytest.mark.parametrize("args,message", [
    (["--views", "original,colour"], "--views"),
    (["--rcm-k", "9"], "--rcm-k"),
    (["--backbone", "/nonexistent/model"], "--backbone /nonexistent/model"),
])
def test_cli_bad_options(sample_root, args, message, capsys, tmp_path):
    assert cli("--data-root", str(sample_root), "--out", str(tmp_path / "t.h5"), *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and err.count("\n") == 0


def test_directory_without_saved_model(sample_root, tmp_path, capsys):
    assert cli("--data-root", str(sample_root), "--out", str(tmp_path / "t.h5"), "--backbone", str(tmp_path)) == 2
    assert "no saved_model.pb" in capsys.readouterr().err


def test_unreachable_hub_handle_names_the_alternatives(sample_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    assert cli("--data-root", str(sample_root), "--out", str(tmp_path / "t.h5"), "--backbone",
               "http://127.0.0.1:9/no/model/1") == 2
    err = capsys.readouterr().err
    assert "TFHUB_CACHE_DIR" in err and "local" in err and "Traceback" not in err


def test_views_figure_written_beside_cache(sample_root, model_cache, tmp_path, capsys):
    out = tmp_path / "train.h5"
    args = ("--data-root", str(sample_root), "--out", str(out), "--backbone", "random-resnet50v2",
            "--image-size", str(IMAGE_SIZE), "--num-views", "1", "--model-cache", str(model_cache))
    assert cli(*args) == 0  # no --quiet: the progress bar still stays out of a stderr that is not a terminal
    png = tmp_path / "train.views.png"
    captured = capsys.readouterr()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in captured.out
    assert "\r" not in captured.err and "\x1b" not in captured.err
    assert (captured.out + captured.err).count("UNTRAINED") == 1  # the untrained note once per command
    png.unlink()  # e.g. killed after `complete` was set, while the figure was being written:
    (tmp_path / ".train.views.png.tmp-0123abcd").write_bytes(b"\x89PNG half")
    assert cli(*args) == 0
    out_text = capsys.readouterr().out
    assert "nothing to do" in out_text and f"wrote the missing {png}" in out_text and png.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.h5", "train.views.png"]  # no lock, no temporary
