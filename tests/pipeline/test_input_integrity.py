"""Every file accounted for, names normalised at the edge, no image in two splits, ids and line endings: the
readers' side of issue 34 (real quirks: .thumbnails/, .DS_Store, ._ AppleDouble files, NFD names from macOS,
dangling links, CR and CRLF line endings)."""

from __future__ import annotations

import os
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.datasets import cache_source, load_dataset
from pipeline.datasets.integrity import check_dataset, identical_files
from pipeline.errors import PipelineError
from pipeline.sample import make_sample_dataset
from pipeline.views import make_permutations

NFC = unicodedata.normalize("NFC", "Crème brûlée")
NFD = unicodedata.normalize("NFD", "Crème brûlée")


def picture(path: Path, value: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 10, 3), value, np.uint8)).convert(mode).save(path)
    return path


def quirky_tree(root: Path) -> Path:
    """Two real classes (one NFC in train, NFD in test), and one of each thing a folder reader must not take."""
    for k, split in enumerate(("train", "train", "test")):
        picture(root / split / (NFC if split == "train" else NFD) / f"c{k}.jpg", 10 * k + 1)
    picture(root / "train" / "zebra" / "z0.png", 50)
    picture(root / "test" / "zebra" / "z1.PNG", 60)  # extensions in any case
    picture(root / "train" / ".thumbnails" / "t0.jpg", 70)  # hidden folder: never a class
    picture(root / "train" / ".thumbnails" / "t1.jpg", 71)
    (root / "train" / "zebra" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "train" / "zebra" / "._z0.png").write_bytes(b"\0\5\26\7 AppleDouble")  # macOS resource fork
    (root / "train" / "zebra" / "notes.txt").write_text("not an image\n")
    picture(root / "train" / "zebra" / "more" / "z9.jpg", 80)  # nested one level too deep
    os.symlink(root / "nowhere.jpg", root / "train" / "zebra" / "gone.jpg")  # dangling link
    (root / "train" / "empty").mkdir()  # empty class folder: not a class
    picture(root / "train" / "loose.jpg", 90)  # outside a class folder
    picture(root / "__MACOSX" / "train" / "zebra" / "._z0.png")  # root level: not part of the tree
    return root


EXPECTED_SKIPS = {"hidden": 4, "unsupported extension": 1, "nested": 1, "unreadable link": 1,
                  "empty class folder": 1, "outside a class folder": 1}


def test_every_file_of_a_tree_is_an_image_or_a_counted_skip(tmp_path):
    root = quirky_tree(tmp_path / "tree")
    data = load_dataset("folder", root, "all")
    assert data.class_names == [NFC, "zebra"]  # no hidden class, NFC and NFD one class, no empty class
    assert sorted(zip(data.path, data.label.tolist(), data.official_split)) == sorted([
        (f"train/{NFC}/c0.jpg", 0, "train"), (f"train/{NFC}/c1.jpg", 0, "train"), (f"test/{NFD}/c2.jpg", 0, "test"),
        ("train/zebra/z0.png", 1, "train"), ("test/zebra/z1.PNG", 1, "test")])
    assert data.skipped == EXPECTED_SKIPS
    assert data.skipped_examples["hidden"] == "train/.thumbnails/"
    assert cache_source(data)["skipped"] == EXPECTED_SKIPS  # in the cache config


def test_a_clean_tree_records_no_skips(tmp_path):
    root = make_sample_dataset(tmp_path / "s", 2, 4, seed=0, min_side=16, max_side=24, layout="folder")
    data = load_dataset("folder", root, "train")
    assert data.skipped == {} and "skipped" not in cache_source(data)  # caches of clean trees keep their hash


def test_trainval_is_train_and_val(tmp_path):
    root = make_sample_dataset(tmp_path / "s", 2, 6, seed=0, min_side=16, max_side=24, layout="folder")
    parts = {s: load_dataset("folder", root, s) for s in ("train", "val", "trainval")}
    assert sorted(parts["trainval"].path) == sorted(parts["train"].path + parts["val"].path)
    assert set(parts["trainval"].official_split) == {"train", "val"}


def write_csv(root: Path, lines: list[str], newline: str = "\n") -> str:
    (root / "labels.csv").write_bytes(newline.join(["path,label,split", *lines, ""]).encode())
    return "labels.csv"


@pytest.mark.parametrize("lines, words", [
    (["x.jpg,a,train", "./x.jpg,b,train"], "labels.csv:3: x.jpg already listed on line 2: one image with two labels"),
    (["x.jpg,a,train", "sub/../x.jpg,a,test"], "labels.csv:3: x.jpg already listed on line 2: one image in two splits "
                                               "(train and test)"),
    (["x.jpg,a,train", "x.jpg,a,train"], "already listed on line 2: listed twice"),
    ([f"{NFC}.jpg,a,train", f"{NFD}.jpg,a,test"], "one image in two splits"),  # NFC and NFD spellings of one name
])
def test_csv_paths_are_compared_normalised(tmp_path, lines, words):
    picture(tmp_path / "x.jpg")
    with pytest.raises(PipelineError) as e:
        load_dataset("folder", tmp_path, "all", csv=write_csv(tmp_path, lines))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_csv_link_to_a_listed_file_is_the_same_file(tmp_path):
    picture(tmp_path / "x.jpg")
    os.symlink(tmp_path / "x.jpg", tmp_path / "y.jpg")
    with pytest.raises(PipelineError) as e:
        load_dataset("folder", tmp_path, "all", csv=write_csv(tmp_path, ["x.jpg,a,train", "y.jpg,a,test"]))
    assert "labels.csv:3: y.jpg is the same file as x.jpg on line 2: one image in two splits (train and test)" in str(e.value)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_csv_rows_hidden_and_unsupported_are_counted_and_labels_nfc(tmp_path, newline):
    for name in ("x.jpg", "y.tif", "z.webp"):
        picture(tmp_path / name)
    csv = write_csv(tmp_path, ["./x.jpg,%s,train" % NFD, "y.tif,%s,test" % NFC, ".hidden/z.jpg,a,train",
                               "notes.txt,a,train", "z.webp,b,val"], newline)
    data = load_dataset("folder", tmp_path, "all", csv=csv)
    assert data.class_names == [NFC, "b"] and sorted(data.path) == ["x.jpg", "y.tif", "z.webp"]
    assert data.skipped == {"hidden": 1, "unsupported extension": 1}


# --- CUB-style text files ------------------------------------------------------------------------------------------
@pytest.fixture
def cub(tmp_path, sample_root):
    root = tmp_path / "CUB_200_2011"
    shutil.copytree(sample_root, root)
    return root


def edit(path: Path, change) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(change(lines)) + "\n")


def test_cub_file_under_a_train_id_and_a_test_id_is_refused(cub):
    split = dict(line.split() for line in (cub / "train_test_split.txt").read_text().split("\n") if line)
    train_id = next(i for i, f in split.items() if f == "1")
    test_id = next(i for i, f in split.items() if f == "0")
    images = dict(line.split(" ", 1) for line in (cub / "images.txt").read_text().split("\n") if line)
    edit(cub / "images.txt", lambda lines: [f"{test_id} ./{images[train_id]}" if ln.split()[0] == test_id else ln
                                            for ln in lines])
    low, high = sorted((int(train_id), int(test_id)), key=int)
    with pytest.raises(PipelineError) as e:
        load_dataset("cub", cub, "test")
    message = str(e.value)
    assert message.startswith(f"{cub / 'images.txt'}: ") and "one image in two splits" in message
    assert f"image_id {low} (" in message and f"image_id {high} (" in message and "\n" not in message


@pytest.mark.parametrize("bad_id", ["-3", "99999999999999999999", "9223372036854775808"])
def test_cub_ids_outside_int64_are_one_line(cub, bad_id):
    edit(cub / "images.txt", lambda lines: [f"{bad_id} {lines[0].split(' ', 1)[1]}"] + lines[1:])
    with pytest.raises(PipelineError) as e:
        load_dataset("cub", cub, "train")
    assert str(e.value) == (f"{cub / 'images.txt'}:1: id {bad_id} is not a non-negative 64-bit integer "
                            f"(0..9223372036854775807)")


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_cub_any_line_ending_reads_the_same_rows(cub, sample_root, newline):
    for name in ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "bounding_boxes.txt"):
        f = cub / name
        f.write_bytes(newline.join(f.read_text().splitlines()).encode() + newline.encode())
    ours, theirs = load_dataset("cub", cub, "all"), load_dataset("cub", sample_root, "all")
    assert ours.path == theirs.path and (ours.label == theirs.label).all() and ours.class_names == theirs.class_names


def test_a_fault_in_images_txt_is_blamed_on_images_txt(cub):
    """A lone CR in images.txt (one line, classic Mac OS) before a missing path: the refusal names images.txt."""
    lines = (cub / "images.txt").read_text().splitlines()
    (cub / "images.txt").write_bytes("\r".join([lines[0].split()[0]] + lines[1:]).encode())
    with pytest.raises(PipelineError) as e:
        load_dataset("cub", cub, "train")
    assert str(e.value).startswith(f"{cub / 'images.txt'}:1: expected '<image_id> <relative_path>'")


def test_views_refuse_a_negative_id_in_one_line():
    with pytest.raises(PipelineError, match="non-negative ids"):
        make_permutations("jigsaw", 0, np.asarray([-1]), 1, 3)


# --- the all-splits check and the content hash --------------------------------------------------------------------
def test_identical_bytes_under_two_paths_are_found_and_said(tmp_path):
    root = tmp_path / "tree"
    picture(root / "train" / "a" / "x.png", 5)
    (root / "test" / "a").mkdir(parents=True)
    shutil.copy(root / "train" / "a" / "x.png", root / "test" / "a" / "x_copy.png")
    picture(root / "train" / "a" / "y.png", 6)
    picture(root / "test" / "b" / "z.png", 7)
    check = check_dataset("folder", root)
    assert check.files == 4 and check.identical == [("test/a/x_copy.png", "test", "train/a/x.png", "train")]
    assert "1 pair of files with identical bytes under two paths, 1 of them across splits" in check.line()
    assert check.record()["identical_across_splits"] == 1


def test_identical_files_hashes_only_equal_sizes(tmp_path):
    files = [tmp_path / n for n in "abcd"]
    for f, content in zip(files, (b"same", b"same", b"diff", b"longer")):
        f.write_bytes(content)
    assert identical_files(files + [tmp_path / "missing"]) == [[0, 1]]


def test_a_clean_dataset_checks_clean(sample_root):
    check = check_dataset("cub", sample_root)
    assert check.files == 12 and check.identical == [] and "each listed once and in one split" in check.line()


def test_any_readers_rows_name_each_file_once(tmp_path):
    """The generic check extract-features and the study run on every reader's `all` rows (e.g. a Flowers-102
    setid.mat whose trnid and tstid share an index)."""
    from pipeline.datasets.base import make_dataset
    from pipeline.datasets.integrity import check_one_split_per_file

    data = make_dataset("flowers102", tmp_path, "all", [5, 7, 9], [0, 1, 0], ["image_00005.jpg", "image_00007.jpg",
                        "./image_00005.jpg"], ["001", "002"], ["train", "val", "test"], tmp_path / "jpg")
    with pytest.raises(PipelineError) as e:
        check_one_split_per_file(data)
    assert str(e.value) == (f"{tmp_path / 'setid.mat'}: ./image_00005.jpg is listed as image_id 5 "
                            "(train) and as image_id 9 (test): one image in two splits (train and test); remove one")
