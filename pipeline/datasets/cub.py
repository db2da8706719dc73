"""CUB-200-2011: every metadata file joined on image_id, 0-based labels, official train/test split."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PipelineError
from .base import Dataset, Reader, check_images_exist, check_root, check_split, make_dataset, nonempty
from .text import check_cub_like_tables, read_table

SPLITS = ("train", "test", "all")
METADATA_FILES = (
    "images.txt",
    "classes.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
)


def _tables(root: Path) -> tuple:
    f_images, f_classes, f_labels, f_split, f_bbox = (root / n for n in METADATA_FILES)
    images = read_table(f_images, "<image_id> <relative_path>", (int, str))
    classes = read_table(f_classes, "<class_id> <class_name>", (int, str))
    labels = read_table(f_labels, "<image_id> <class_id>", (int, int))
    is_train = read_table(f_split, "<image_id> <is_training_image>", (int, int))
    bbox = read_table(f_bbox, "<image_id> <x> <y> <width> <height>", (int, float, float, float, float))
    class_ids = sorted(classes)
    if class_ids != list(range(1, len(class_ids) + 1)):
        raise PipelineError(
            f"{f_classes}: expected class ids 1..{len(class_ids)}, found {class_ids[:3]}...{class_ids[-1]}"
        )
    check_cub_like_tables((f_images, f_classes, f_labels, f_split, f_bbox), images, classes, labels, is_train, bbox)
    return images, classes, labels, is_train, bbox


def load_cub(root: str | os.PathLike, split: str = "train", check_images: bool = True) -> Dataset:
    """Read CUB-200-2011 at `root` (the directory holding images.txt) and return one split.

    Every file is joined on image_id; labels are classes.txt ids minus one; rows are sorted by
    image_id. Raises PipelineError naming the file (and line) for anything malformed or missing.
    """
    check_split(split, SPLITS)
    root = check_root(Path(root), "CUB-200-2011")
    images, classes, labels, is_train, bbox = _tables(root)
    ids = sorted(images)
    if split != "all":
        want = 1 if split == "train" else 0
        ids = [i for i in ids if is_train[i][0] == want]
    nonempty(ids, root / "train_test_split.txt", split)
    data = make_dataset(
        "cub", root, split, ids, [labels[i][0] - 1 for i in ids], [images[i][0] for i in ids],
        [classes[c][0] for c in sorted(classes)], ["train" if is_train[i][0] == 1 else "test" for i in ids],
        root / "images", bbox=[bbox[i] for i in ids],
    )
    if check_images:
        check_images_exist(data, "images.txt")
    return data


def display_name(class_name: str) -> str:
    """'017.Cardinal' -> 'Cardinal'; 'Black_footed_Albatross' -> 'Black footed Albatross'."""
    head, sep, tail = class_name.partition(".")
    name = tail if sep and head.isdigit() else class_name
    return name.replace("_", " ")


def _download(root: Path, progress: bool = True) -> Path:
    from ..download import download_cub

    return download_cub(root, progress=progress)


READER = Reader(
    name="cub", title="CUB-200-2011", load=load_cub, splits=SPLITS, dirname="CUB_200_2011",
    official_validation=None, download=_download,
)
