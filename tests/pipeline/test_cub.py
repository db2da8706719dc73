"""CUB reader: joins on image_id, 0-based labels, official split, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pipeline.cub import display_name, load_cub
from pipeline.errors import PipelineError


def _truth(root):
    """Ground truth from the files themselves, parsed independently of the reader."""
    table = lambda name: dict(line.split(maxsplit=1) for line in (root / name).read_text().split("\n") if line)  # noqa: E731
    images, labels, split = table("images.txt"), table("image_class_labels.txt"), table("train_test_split.txt")
    return {int(i): (images[i].strip(), int(labels[i]) - 1, split[i].strip() == "1") for i in images}


def test_metadata_is_shuffled_so_the_join_matters(sample_root):
    ids = [int(line.split()[0]) for line in (sample_root / "image_class_labels.txt").read_text().split("\n") if line]
    assert ids != sorted(ids)


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_rows_joined_on_image_id(sample_root, split):
    truth = _truth(sample_root)
    data = load_cub(sample_root, split)
    want = sorted(i for i, (_, _, t) in truth.items() if split == "all" or t == (split == "train"))
    assert data.image_id.tolist() == want
    for n, i in enumerate(data.image_id):
        path, label, _ = truth[int(i)]
        assert data.path[n] == path
        assert data.label[n] == label
        # the class folder of every image carries its 1-based class id: the label must agree
        assert int(path.split(".")[0]) == label + 1
    assert data.label.min() >= 0 and data.label.max() < len(data.class_names)


def test_splits_partition_all(sample_root):
    train, test, everything = (load_cub(sample_root, s) for s in ("train", "test", "all"))
    assert len(np.intersect1d(train.image_id, test.image_id)) == 0
    assert sorted(np.concatenate([train.image_id, test.image_id]).tolist()) == everything.image_id.tolist()
    assert train.class_names[0] == "001.Sample_species_1" and display_name(train.class_names[0]) == "Sample species 1"


@pytest.fixture
def broken(sample_root, tmp_path):
    root = tmp_path / "CUB_200_2011"
    shutil.copytree(sample_root, root)
    return root


def _error(root, split="train") -> str:
    with pytest.raises(PipelineError) as e:
        load_cub(root, split)
    return str(e.value)


def test_missing_metadata_file(broken):
    (broken / "train_test_split.txt").unlink()
    assert "train_test_split.txt: missing" in _error(broken)


def test_malformed_line_names_file_and_line(broken):
    f = broken / "image_class_labels.txt"
    lines = f.read_text().split("\n")
    lines[2] = "7 seven"
    f.write_text("\n".join(lines))
    msg = _error(broken)
    assert "image_class_labels.txt:3" in msg and "seven" in msg


def test_id_absent_from_one_file(broken):
    f = broken / "bounding_boxes.txt"
    kept = [line for line in f.read_text().split("\n") if line and not line.startswith("5 ")]
    f.write_text("\n".join(kept) + "\n")
    msg = _error(broken)
    assert "bounding_boxes.txt" in msg and "image_id 5" in msg


def test_listed_image_missing(broken):
    data = load_cub(broken, "all")
    (broken / "images" / data.path[3]).unlink()
    split = "train" if data.is_train[3] else "test"
    assert data.path[3] in _error(broken, split) and "does not exist" in _error(broken, split)


def test_unknown_split(sample_root):
    assert "--split" in _error(sample_root, "val")


def test_non_utf8_byte_names_file_and_line(broken):
    f = broken / "images.txt"
    lines = f.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b".jpg", b"\xe9.jpg")  # a Latin-1 'é' in a path
    f.write_bytes(b"\n".join(lines))
    msg = _error(broken)
    assert msg.startswith(f"{f}:5: not UTF-8 text (byte 0xe9 at column") and "\n" not in msg


def test_utf8_bom_on_the_first_line_is_accepted(broken, sample_root):
    f = broken / "classes.txt"
    f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    assert load_cub(broken, "all").class_names == load_cub(sample_root, "all").class_names
