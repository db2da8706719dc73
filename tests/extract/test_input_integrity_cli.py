"""extract-features on issue 34's quirks, with both loaders (TensorFlow: random-resnet50v2, in tests marked tf; PIL:
a torchvision backbone with random weights): a right cache with what was skipped and found said and recorded, or
one line and exit 2 before the backbone loads (a too-large image: when its block comes)."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import h5py
import numpy as np
import pytest

import extract.backbones
from extract.cli import extract_features
from pipeline.errors import run_cli
from pipeline.reader import read_cache
from tests.pipeline.image_files import write_png
from tests.pipeline.test_input_integrity import EXPECTED_SKIPS, NFC, picture, quirky_tree, write_csv
from tests.support import IMAGE_SIZE

try:
    import torchvision  # noqa: F401

    HAVE_TORCHVISION = True
except Exception:  # noqa: BLE001 - absent, or a build that does not match torch
    HAVE_TORCHVISION = False

LOADERS = [
    pytest.param(["--backbone", "random-resnet50v2"], id="tf", marks=pytest.mark.tf),
    pytest.param(["--backbone", "torchvision:resnet18", "--weights", "random", "--device", "cpu"], id="pil",
                 marks=pytest.mark.skipif(not HAVE_TORCHVISION, reason="torchvision not usable here")),
]


def cli(*args):
    with pytest.raises(SystemExit) as e:
        run_cli(extract_features, [str(a) for a in args])
    return e.value.code


def run(loader, root, out, *extra, model_cache=None):
    return cli("--data-root", root, "--out", out, "--image-size", IMAGE_SIZE, "--views", "original", "--quiet",
               "--precision", "fp32", *(["--model-cache", model_cache] if model_cache else []), *loader, *extra)


@pytest.fixture
def no_backbone(monkeypatch):
    monkeypatch.setattr(extract.backbones, "load_for_options", lambda *a, **k: pytest.fail("the backbone loaded"))


@pytest.mark.parametrize("loader", LOADERS)
def test_a_quirky_tree_gives_the_right_cache_and_says_what_it_skipped(loader, tmp_path, capsys, model_cache):
    root = quirky_tree(tmp_path / "tree")
    write_png(root / "train" / "zebra" / "g16.png", (np.arange(80).reshape(8, 10) * 700).astype(np.uint16), 16, 0)
    assert run(loader, root, tmp_path / "train.h5", "--dataset", "folder", "--split", "train",
               model_cache=model_cache) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"{root}: 9 entries not used: hidden 4 (e.g. train/.thumbnails/), unsupported extension 1" in lines[-2]
    assert lines[-1] == (f"{root}: input check: 6 files over all splits, each listed once and in one split; "
                         "no two files with identical bytes")
    cache = read_cache(tmp_path / "train.h5")
    assert cache.class_names == [NFC, "zebra"] and len(cache) == 4
    assert dict(zip(cache.paths, cache.label.tolist()))["train/zebra/g16.png"] == 1
    assert cache.config["source"]["skipped"] == EXPECTED_SKIPS
    assert json.loads(cache.attrs["input_check"])["files"] == 6
    assert "exif=ignored" in cache.config["preprocessing"]


@pytest.mark.parametrize("loader", LOADERS)
def test_identical_bytes_across_splits_are_said_and_recorded(loader, tmp_path, capsys, model_cache):
    root = tmp_path / "tree"
    for split, cls, value in (("train", "a", 1), ("train", "b", 2), ("test", "a", 3), ("test", "b", 4)):
        picture(root / split / cls / f"{split}{cls}.png", value)
    shutil.copy(root / "train" / "a" / "traina.png", root / "test" / "a" / "copy.png")
    assert run(loader, root, tmp_path / "test.h5", "--dataset", "folder", "--split", "test",
               model_cache=model_cache) == 0
    out = capsys.readouterr().out
    assert ("WARNING: 1 pair of files with identical bytes under two paths, 1 of them across splits (e.g. "
            "test/a/copy.png (test) = train/a/traina.png (train))") in out
    with h5py.File(tmp_path / "test.h5", "r") as f:
        assert json.loads(f.attrs["input_check"])["identical_across_splits"] == 1


def cub_copy(sample_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "CUB_200_2011"
    shutil.copytree(sample_root, root)
    return root


def refuse_one_line(capsys, loader, *args) -> str:
    assert cli(*args, "--image-size", IMAGE_SIZE, "--quiet", *loader) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err


def swap_line(path: Path, image_id: str, text: str) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(text if ln.split()[0] == image_id else ln for ln in lines) + "\n")


@pytest.mark.parametrize("loader", LOADERS)
def test_cub_image_in_two_splits_is_refused_before_the_backbone(loader, sample_root, tmp_path, capsys, no_backbone):
    root = cub_copy(sample_root, tmp_path)
    split = dict(ln.split() for ln in (root / "train_test_split.txt").read_text().splitlines())
    images = dict(ln.split(" ", 1) for ln in (root / "images.txt").read_text().splitlines())
    train_id = min((i for i, f in split.items() if f == "1"), key=int)
    test_id = min((i for i, f in split.items() if f == "0"), key=int)
    swap_line(root / "images.txt", test_id, f"{test_id} {images[train_id]}")
    err = refuse_one_line(capsys, loader, "--data-root", root, "--split", "train", "--out", tmp_path / "x.h5")
    assert f"{root / 'images.txt'}: {images[train_id]} is listed as image_id" in err and "one image in two splits" in err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("bad_id", ["-1", "18446744073709551616"])
def test_cub_id_outside_int64_is_one_line(loader, bad_id, sample_root, tmp_path, capsys, no_backbone):
    root = cub_copy(sample_root, tmp_path)
    first = (root / "images.txt").read_text().splitlines()[0].split()[0]
    for name in ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt"):
        lines = (root / name).read_text().splitlines()
        (root / name).write_text("\n".join(" ".join([bad_id, *ln.split(" ")[1:]]) if ln.split()[0] == first else ln
                                           for ln in lines) + "\n")
    err = refuse_one_line(capsys, loader, "--data-root", root, "--split", "test", "--out", tmp_path / "x.h5")
    assert f"id {bad_id} is not a non-negative 64-bit integer" in err


@pytest.mark.parametrize("loader", LOADERS)
def test_csv_dot_slash_path_is_the_same_file(loader, tmp_path, capsys, no_backbone):
    picture(tmp_path / "x.jpg")
    csv = write_csv(tmp_path, ["x.jpg,a,train", "./x.jpg,b,test"])
    err = refuse_one_line(capsys, loader, "--dataset", "folder", "--folder-csv", csv, "--data-root", tmp_path,
                          "--split", "train", "--out", tmp_path / "x.h5")
    assert "labels.csv:3: x.jpg already listed on line 2: one image in two splits (train and test)" in err


@pytest.mark.parametrize("loader", LOADERS)
def test_nfd_class_in_test_is_the_nfc_class_of_train(loader, tmp_path, capsys, model_cache):
    root = tmp_path / "tree"
    nfd = unicodedata.normalize("NFD", NFC)
    for split, cls, value in (("train", NFC, 1), ("train", "b", 2), ("test", nfd, 3), ("test", "b", 4)):
        picture(root / split / cls / f"{value}.jpg", value * 20)
    assert run(loader, root, tmp_path / "test.h5", "--dataset", "folder", "--split", "test",
               model_cache=model_cache) == 0
    cache = read_cache(tmp_path / "test.h5")
    assert cache.class_names == [NFC, "b"] and cache.label.tolist() == [0, 1]


@pytest.mark.parametrize("loader", LOADERS)
def test_a_too_large_image_is_one_line_naming_file_and_limit(loader, tmp_path, capsys, model_cache):
    root = tmp_path / "tree"
    picture(root / "train" / "a" / "small.png")
    write_png(root / "train" / "b" / "huge.png", None, 1, 0, width=10_000, height=9_000)
    assert run(loader, root, tmp_path / "train.h5", "--dataset", "folder", "--split", "train",
               model_cache=model_cache) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DecompressionBomb" not in err and "Traceback" not in err
    assert err.startswith(f"error: {root / 'train' / 'b' / 'huge.png'}: cannot decode image (image_id 2): "
                          "90,000,000 pixels (10000 x 9000), above the limit of 89,478,485 pixels per image")
