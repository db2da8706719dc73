"""Oxford Flowers-102: jpg/image_%05d.jpg, imagelabels.mat (1-based labels), setid.mat (trnid 1,020,
valid 1,020, tstid 6,149; 1-based image indices). Labels made 0-based; select on the official valid split."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PipelineError
from .base import Dataset, Reader, check_images_exist, check_root, check_split, make_dataset, nonempty
from .matfile import as_int, as_list, load_mat

SPLITS = ("train", "val", "trainval", "test", "all")
WHAT = "Flowers-102"
SETS = {"train": "trnid", "val": "valid", "test": "tstid"}
BASE_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
# (file, bytes, MD5 published by torchvision, SHA-256 from TFDS url_checksums/oxford_flowers102.txt)
FILES = (
    ("102flowers.tgz", 344_862_509, "52808999861908f626f3c1f4e79d11fa",
     "2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246"),
    ("imagelabels.mat", 502, "e0620be6f572b9609742df49c70aed4d",
     "4903e94206bac23bf772aadf06451916df56b58fc483a62db32a97b82656651d"),
    ("setid.mat", 14_989, "a5357ecc9cb78c4bef273ce3793fc85c",
     "46b8678f91fd95d3c8f4feab80d271a6c834a1dd896fe29fd3e6ad9ce5c8dccd"),
)


def _official(setid: Path, images: int) -> dict[int, str]:
    """{1-based image index: train / val / test} from setid.mat, each index in exactly one set."""
    mat = load_mat(setid, WHAT, tuple(SETS.values()))
    where: dict[int, str] = {}
    for split, var in SETS.items():
        for k, value in enumerate(as_list(mat[var]), 1):
            i = as_int(value, setid, k, var)
            if not 1 <= i <= images:
                raise PipelineError(f"{setid}: {var} entry {k} is image {i}, but imagelabels.mat has {images} images")
            if i in where:
                raise PipelineError(f"{setid}: image {i} is in {var} and in {SETS[where[i]]}")
            where[i] = split
    return where


def load_flowers102(root: str | os.PathLike, split: str = "train", check_images: bool = True) -> Dataset:
    """Read Oxford Flowers-102 at `root`; image ids are the 1-based indices of imagelabels.mat."""
    check_split(split, SPLITS)
    root = check_root(Path(root), WHAT)
    f_labels = root / "imagelabels.mat"
    labels = [as_int(v, f_labels, k, "labels") for k, v in
              enumerate(as_list(load_mat(f_labels, WHAT, ("labels",))["labels"]), 1)]
    classes = sorted(set(labels))
    if classes != list(range(1, len(classes) + 1)):
        raise PipelineError(f"{f_labels}: expected labels 1..{len(classes)}, found {classes[:3]}...{classes[-1]}")
    where = _official(root / "setid.mat", len(labels))
    wanted = {"all": ("train", "val", "test"), "trainval": ("train", "val")}.get(split, (split,))
    ids = sorted(i for i, s in where.items() if s in wanted)
    nonempty(ids, root / "setid.mat", split)
    dataset = make_dataset("flowers102", root, split, ids, [labels[i - 1] - 1 for i in ids],
                           [f"image_{i:05d}.jpg" for i in ids], [f"{c:03d}" for c in classes],
                           [where[i] for i in ids], root / "jpg")
    if check_images:
        check_images_exist(dataset, "imagelabels.mat")
    return dataset


def _download(root: Path, progress: bool = True) -> Path:
    from ..download import Resource, download_dataset

    resources = [Resource(BASE_URL + name, name, md5=md5, sha256=sha, size=size, extract=name.endswith(".tgz"))
                 for name, size, md5, sha in FILES]
    return download_dataset(root, resources, marker="setid.mat", progress=progress)


READER = Reader(
    name="flowers102", title="Oxford Flowers-102", load=load_flowers102, splits=SPLITS, dirname="flowers-102",
    official_validation="val", download=_download,
)
