"""Stanford Dogs: 120 breeds, 12,000 train / 8,580 test, from lists.tar's train_list.mat / test_list.mat
(file paths under Images/, 1-based labels). Boxes live in annotation.tar's XML files and are not read."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PipelineError
from .base import Dataset, Reader, check_images_exist, check_root, check_split, make_dataset, nonempty, rank_ids
from .matfile import as_int, as_list, as_text, load_mat

SPLITS = ("train", "test", "all")
WHAT = "Stanford Dogs"
BASE_URL = "http://vision.stanford.edu/aditya86/ImageNetDogs/"
# SHA-256 and sizes from TFDS url_checksums/stanford_dogs.txt
ARCHIVES = (
    ("images.tar", 793_579_520, "a443fc2f9a851aa1a7b8e4fa4af94b8459fce2c9f5a2f4dd4669cf9673a4ec58"),
    ("lists.tar", 481_280, "34b47cacd9a98b5d150e084f24d29391c084c55272295ec65c85651bc35f4d6c"),
    ("annotation.tar", 21_852_160, "662ed36f707be6b195c2fda392d8e153e83af28cedc8e2134a649f198def30fd"),
)


def _list(path: Path) -> list[tuple[str, int]]:
    """[(path under Images/, 1-based label)] of train_list.mat or test_list.mat."""
    mat = load_mat(path, WHAT, ("file_list", "labels"))
    files, labels = as_list(mat["file_list"]), as_list(mat["labels"])
    if len(files) != len(labels):
        raise PipelineError(f"{path}: {len(files)} entries in file_list but {len(labels)} in labels")
    rows = [(as_text(f, path, k, "file_list"), as_int(c, path, k, "labels")) for k, (f, c) in enumerate(zip(files, labels), 1)]
    if not rows:
        raise PipelineError(f"{path}: file_list is empty")
    return rows


def _class_names(rows: dict[str, list], root: Path) -> list[str]:
    """Breed names from the image folders ('n02085620-Chihuahua'), one folder per label 1..C."""
    folder: dict[int, str] = {}
    for s, entries in rows.items():
        f = root / f"{s}_list.mat"
        for k, (p, c) in enumerate(entries, 1):
            name = p.split("/")[0] if "/" in p else ""
            if folder.setdefault(c, name) != name or not name:
                raise PipelineError(f"{f}: entry {k} ({p}) has label {c}, but label {c} is folder {folder[c]!r} elsewhere")
    labels = sorted(folder)
    if labels != list(range(1, len(labels) + 1)):
        raise PipelineError(f"{root / 'train_list.mat'}: expected labels 1..{len(labels)}, found {labels[:3]}...{labels[-1]}")
    return [folder[c] for c in labels]


def load_dogs(root: str | os.PathLike, split: str = "train", check_images: bool = True) -> Dataset:
    """Read Stanford Dogs at `root` (holding Images/ and the lists); ids rank the image paths."""
    check_split(split, SPLITS)
    root = check_root(Path(root), WHAT)
    rows = {s: _list(root / f"{s}_list.mat") for s in ("train", "test")}
    both = set(p for p, _ in rows["train"]) & set(p for p, _ in rows["test"])
    if both:
        raise PipelineError(f"{root / 'test_list.mat'}: {sorted(both)[0]} is also in train_list.mat ({len(both)} shared)")
    names = _class_names(rows, root)
    ids = rank_ids(p for entries in rows.values() for p, _ in entries)
    chosen = [(s, p, c) for s, entries in rows.items() if split in (s, "all") for p, c in entries]
    nonempty(chosen, root / f"{split}_list.mat", split)
    dataset = make_dataset("dogs", root, split, [ids[p] for _, p, _ in chosen], [c - 1 for _, _, c in chosen],
                           [p for _, p, _ in chosen], names, [s for s, _, _ in chosen], root / "Images")
    if check_images:
        check_images_exist(dataset, f"{split}_list.mat" if split != "all" else "the list files")
    return dataset


def _download(root: Path, progress: bool = True) -> Path:
    from ..download import Resource, download_dataset

    resources = [Resource(BASE_URL + name, name, sha256=sha, size=size) for name, size, sha in ARCHIVES]
    return download_dataset(root, resources, marker="train_list.mat", progress=progress)


READER = Reader(
    name="dogs", title="Stanford Dogs", load=load_dogs, splits=SPLITS, dirname="StanfordDogs", download=_download,
)
