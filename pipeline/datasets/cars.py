"""Stanford Cars: 196 classes, 8,144 train / 8,041 test; the devkit's .mat annotations (boxes, 1-based
classes). The original download is gone (pytorch/vision#7545): the files must be placed by hand."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PipelineError
from .base import Dataset, Reader, check_images_exist, check_root, check_split, make_dataset, nonempty, rank_ids
from .matfile import as_int, as_list, as_text, load_mat

SPLITS = ("train", "test", "all")
WHAT = "Stanford Cars"
FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
PLACEMENT = ("Stanford Cars is no longer downloadable from its original site: place devkit/cars_meta.mat, "
             "devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat and the cars_train/ and cars_test/ "
             "image folders under {root}")


def _test_annotations(root: Path) -> Path:
    """cars_test_annos_withlabels.mat beside devkit/ (as torchvision expects) or inside it."""
    beside = root / "cars_test_annos_withlabels.mat"
    inside = root / "devkit" / "cars_test_annos_withlabels.mat"
    return inside if inside.is_file() and not beside.is_file() else beside


def _annotations(path: Path, folder: str, classes: int) -> list[tuple[str, int, tuple]]:
    """[(relative path, 0-based label, (x, y, w, h))] of one annotation file."""
    rows, seen = [], {}
    for k, entry in enumerate(as_list(load_mat(path, WHAT, ("annotations",))["annotations"]), 1):
        missing = [f for f in FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise PipelineError(f"{path}: annotation {k} has no field {missing[0]!r} (expected {', '.join(FIELDS)})")
        fname = as_text(entry["fname"], path, k, "fname")
        c = as_int(entry["class"], path, k, "class")
        if not 1 <= c <= classes:
            raise PipelineError(f"{path}: annotation {k} ({fname}) has class {c}, expected 1..{classes} (cars_meta.mat)")
        if fname in seen:
            raise PipelineError(f"{path}: annotation {k}: {fname} already listed as annotation {seen[fname]}")
        seen[fname] = k
        x1, y1, x2, y2 = (as_int(entry[f], path, k, f) for f in FIELDS[:4])
        rows.append((f"{folder}/{fname}", c - 1, (x1, y1, x2 - x1, y2 - y1)))
    if not rows:
        raise PipelineError(f"{path}: no annotations")
    return rows


def load_cars(root: str | os.PathLike, split: str = "train", check_images: bool = True) -> Dataset:
    """Read Stanford Cars at `root`; image ids are the rank of `cars_{train,test}/<fname>` among all images."""
    check_split(split, SPLITS)
    root = check_root(Path(root), WHAT, "place the files by hand; see --download")
    meta = root / "devkit" / "cars_meta.mat"
    names = [as_text(n, meta, k, "class name") for k, n in
             enumerate(as_list(load_mat(meta, WHAT, ("class_names",))["class_names"]), 1)]
    parts = {"train": _annotations(root / "devkit" / "cars_train_annos.mat", "cars_train", len(names)),
             "test": _annotations(_test_annotations(root), "cars_test", len(names))}
    ids = rank_ids(p for rows in parts.values() for p, _, _ in rows)
    chosen = [(s, row) for s, rows in parts.items() if split in (s, "all") for row in rows]
    nonempty(chosen, root, split)
    dataset = make_dataset(
        "cars", root, split, [ids[p] for _, (p, _, _) in chosen], [c for _, (_, c, _) in chosen],
        [p for _, (p, _, _) in chosen], names, [s for s, _ in chosen], root, bbox=[b for _, (_, _, b) in chosen],
    )
    if check_images:
        check_images_exist(dataset, "the annotation files")
    return dataset


READER = Reader(
    name="cars", title="Stanford Cars", load=load_cars, splits=SPLITS, dirname="stanford_cars",
    placement=PLACEMENT,
)
