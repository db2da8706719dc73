"""NABirds: 48,562 images, 555 classes; CUB-like text files keyed by image UUIDs, with class ids that are
not contiguous (classes.txt also lists the hierarchy's inner nodes). The classes that label images are
remapped to 0..C-1 in sorted class-id order. No longer publicly downloadable."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Dataset, Reader, check_images_exist, check_root, check_split, make_dataset, nonempty, rank_ids
from .text import check_cub_like_tables, read_table

SPLITS = ("train", "test", "all")
WHAT = "NABirds"
FILES = ("images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")
PLACEMENT = ("NABirds is not publicly downloadable: request it from the Cornell Lab (dl.allaboutbirds.org/nabirds) "
             "and place its files so that {root} holds images.txt, classes.txt, image_class_labels.txt, "
             "train_test_split.txt, bounding_boxes.txt and images/")


def _tables(root: Path) -> tuple:
    f_images, f_classes, f_labels, f_split, f_bbox = (root / n for n in FILES)
    images = read_table(f_images, "<image_id> <relative_path>", (str, str), what=WHAT)
    classes = read_table(f_classes, "<class_id> <class_name>", (int, str), what=WHAT)
    labels = read_table(f_labels, "<image_id> <class_id>", (str, int), what=WHAT)
    is_train = read_table(f_split, "<image_id> <is_training_image>", (str, int), what=WHAT)
    bbox = read_table(f_bbox, "<image_id> <x> <y> <width> <height>", (str, float, float, float, float), what=WHAT)
    check_cub_like_tables((f_images, f_classes, f_labels, f_split, f_bbox), images, classes, labels, is_train, bbox)
    return images, classes, labels, is_train, bbox


def load_nabirds(root: str | os.PathLike, split: str = "train", check_images: bool = True) -> Dataset:
    """Read NABirds at `root`; image ids rank the UUIDs, labels index the used class ids in sorted order."""
    check_split(split, SPLITS)
    root = check_root(Path(root), WHAT, "see --download for where to place it")
    images, classes, labels, is_train, bbox = _tables(root)
    used = sorted({c for (c,) in labels.values()})
    index = {c: k for k, c in enumerate(used)}
    ids = rank_ids(images)
    keys = [k for k in sorted(images) if split == "all" or is_train[k][0] == (1 if split == "train" else 0)]
    nonempty(keys, root / "train_test_split.txt", split)
    dataset = make_dataset(
        "nabirds", root, split, [ids[k] for k in keys], [index[labels[k][0]] for k in keys],
        [images[k][0] for k in keys], [classes[c][0] for c in used],
        ["train" if is_train[k][0] == 1 else "test" for k in keys], root / "images", bbox=[bbox[k] for k in keys],
    )
    if check_images:
        check_images_exist(dataset, "images.txt")
    return dataset


READER = Reader(
    name="nabirds", title="NABirds", load=load_nabirds, splits=SPLITS, dirname="nabirds", placement=PLACEMENT,
)
