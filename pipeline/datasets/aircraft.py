"""FGVC-Aircraft 2013b: 100 variants (70 families, 30 manufacturers as an option), official
train / val / trainval / test splits; select on the official val split."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PipelineError
from .base import Dataset, Reader, check_images_exist, check_root, check_split, make_dataset, nonempty
from .text import check_same_ids, read_names, read_table

SPLITS = ("train", "val", "trainval", "test", "all")
LEVELS = ("variant", "family", "manufacturer")
NAMES_FILE = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}
WHAT = "FGVC-Aircraft"
ARCHIVE_URL = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"
ARCHIVE_BYTES = 2_770_575_360
ARCHIVE_SHA256 = "d5f68b1b81d6d7831eb9d5c5517074176b5dfbce6bcb43dc14ed1c66a87b8d75"  # TFDS url_checksums/fgvc.txt


def _image_id(text: str) -> str:
    if not text.isdigit():
        raise ValueError(text)
    return text


def data_dir(root: Path) -> Path:
    """The directory holding variants.txt: `root/data` (as the archive unpacks) or `root` itself."""
    return root / "data" if (root / "data").is_dir() or not (root / "variants.txt").is_file() else root


def _split_tables(data: Path, level: str, names: list[str]) -> dict[str, dict]:
    """{split: {image id: (class name,)}} for train, val, trainval and test, names checked."""
    known = set(names)
    tables = {}
    for s in ("train", "val", "trainval", "test"):
        f = data / f"images_{level}_{s}.txt"
        tables[s] = read_table(f, f"<image_id> <{level} name>", (_image_id, str), what=WHAT)
        for image_id, (name,) in tables[s].items():
            if name not in known:
                raise PipelineError(f"{f}: image {image_id} has {level} {name!r}, not in {NAMES_FILE[level]}")
    return tables


def _check_partition(data: Path, level: str, tables: dict[str, dict]) -> None:
    """train and val are disjoint and make trainval; trainval and test are disjoint."""
    f = lambda s: data / f"images_{level}_{s}.txt"  # noqa: E731
    for a, b in (("train", "val"), ("trainval", "test")):
        shared = sorted(set(tables[a]) & set(tables[b]))
        if shared:
            raise PipelineError(f"{f(b)}: image {shared[0]} is also in {f(a).name} ({len(shared)} shared)")
    check_same_ids(tables["trainval"], f("trainval"), {**tables["train"], **tables["val"]},
                   f("train").with_name(f"{f('train').name} + {f('val').name}"), label="image")


def _boxes(data: Path, level: str, ids: dict) -> dict:
    f = data / "images_box.txt"
    boxes = read_table(f, "<image_id> <xmin> <ymin> <xmax> <ymax>", (_image_id, float, float, float, float), what=WHAT)
    check_same_ids(ids, Path(f"images_{level}_trainval.txt + images_{level}_test.txt"), boxes, f, label="image")
    return {k: (x0, y0, x1 - x0, y1 - y0) for k, (x0, y0, x1, y1) in boxes.items()}


def load_aircraft(root: str | os.PathLike, split: str = "trainval", check_images: bool = True,
                  level: str = "variant") -> Dataset:
    """Read FGVC-Aircraft 2013b at `root` (fgvc-aircraft-2013b/); labels index `<level>s.txt` in file order."""
    check_split(split, SPLITS)
    if level not in LEVELS:
        raise PipelineError(f"--aircraft-level: expected one of {', '.join(LEVELS)}, found {level!r}")
    root = check_root(Path(root), "FGVC-Aircraft 2013b")
    data = data_dir(root)
    names = read_names(data / NAMES_FILE[level], WHAT)
    tables = _split_tables(data, level, names)
    _check_partition(data, level, tables)
    everything = {**tables["trainval"], **tables["test"]}
    boxes = _boxes(data, level, everything)
    official = {**{k: "train" for k in tables["train"]}, **{k: "val" for k in tables["val"]},
                **{k: "test" for k in tables["test"]}}
    keys = sorted(everything if split == "all" else tables[split])
    nonempty(keys, data / f"images_{level}_{split}.txt", split)
    index = {n: c for c, n in enumerate(names)}
    dataset = make_dataset(
        "aircraft", root, split, [int(k) for k in keys], [index[everything[k][0]] for k in keys],
        [f"{k}.jpg" for k in keys], names, [official[k] for k in keys], data / "images",
        bbox=[boxes[k] for k in keys], options={"level": level},
    )
    if len(set(dataset.image_id.tolist())) != len(keys):
        raise PipelineError(f"{data}: two image names with the same number (e.g. 0012 and 012)")
    if check_images:
        check_images_exist(dataset, f"images_{level}_*.txt")
    return dataset


def _download(root: Path, progress: bool = True) -> Path:
    from ..download import Resource, download_dataset

    archive = Resource(ARCHIVE_URL, "fgvc-aircraft-2013b.tar.gz", sha256=ARCHIVE_SHA256, size=ARCHIVE_BYTES)
    return download_dataset(root, [archive], marker="data/variants.txt", top="fgvc-aircraft-2013b", progress=progress)


READER = Reader(
    name="aircraft", title="FGVC-Aircraft 2013b", load=load_aircraft, splits=SPLITS, dirname="fgvc-aircraft-2013b",
    official_validation="val", options={"level": LEVELS}, download=_download,
)
