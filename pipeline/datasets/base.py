"""The one interface every dataset reader returns: a `Dataset` (one split, rows sorted by a stable id,
0-based labels, class names, the official split of each row, boxes where the dataset has them) and a
`Reader` describing a dataset (its splits, its official validation split, how to get it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import PipelineError


@dataclass(frozen=True)
class Dataset:
    """One split of a dataset, rows sorted by image_id."""

    root: Path
    split: str
    image_id: np.ndarray  # (N,) int64, a stable id (the dataset's own where it has integer ids), ascending
    label: np.ndarray  # (N,) int64, 0-based class index
    path: list[str]  # relative to image_dir
    class_names: list[str]  # (C,), class index c -> name
    bbox: np.ndarray | None = None  # (N, 4) float64, x y w h in pixels; None when the dataset has none
    official_split: tuple[str, ...] = ()  # (N,), the finest official split each row belongs to
    name: str = "cub"
    image_dir: Path | None = None  # defaults to root / "images"
    options: dict = field(default_factory=dict)  # reader options that change rows or labels (e.g. level)
    skipped: dict = field(default_factory=dict)  # reason -> count of files the reader saw and did not use (folder)
    skipped_examples: dict = field(default_factory=dict)  # reason -> the first such file, for the output line

    def __len__(self) -> int:
        return len(self.image_id)

    def image_file(self, i: int) -> Path:
        return (self.image_dir if self.image_dir is not None else self.root / "images") / self.path[i]

    @property
    def is_train(self) -> np.ndarray:
        """(N,) bool: the row is in the official training data (any split but test)."""
        return np.asarray([s != "test" for s in self.official_split], dtype=bool)

    def split_definition(self) -> dict:
        """What selects and labels these rows: dataset name, split and the reader's options."""
        return {"dataset": self.name, "split": self.split, **{k: self.options[k] for k in sorted(self.options)}}


@dataclass(frozen=True)
class Reader:
    """A dataset's reader and its facts."""

    name: str
    title: str
    load: Callable[..., Dataset]  # load(root, split, check_images=True, **options) -> Dataset
    splits: tuple[str, ...]
    dirname: str  # the directory the dataset unpacks to (default root: data/<dirname>)
    official_validation: str | None = None  # the official split to select on, when the dataset has one
    options: dict = field(default_factory=dict)  # option name -> allowed values (None: any string)
    download: Callable[..., Path] | None = None  # download(root, progress=True) -> root
    placement: str = ""  # for datasets without a public archive: which files to place where


def make_dataset(name: str, root: Path, split: str, ids: list, labels: list[int], paths: list[str],
                 class_names: list[str], official: list[str], image_dir: Path, bbox: list | None = None,
                 options: dict | None = None, skipped: tuple[dict, dict] | None = None) -> Dataset:
    """Build a Dataset from parallel lists, sorted by id; an id that is not a non-negative int64 is one line."""
    check_ids(ids, root)
    order = sorted(range(len(ids)), key=lambda k: ids[k])
    return Dataset(
        root=Path(root), split=split, name=name, image_dir=Path(image_dir),
        image_id=np.asarray([ids[k] for k in order], dtype=np.int64),
        label=np.asarray([labels[k] for k in order], dtype=np.int64),
        path=[paths[k] for k in order],
        class_names=list(class_names),
        bbox=None if bbox is None else np.asarray([bbox[k] for k in order], dtype=np.float64).reshape(-1, 4),
        official_split=tuple(official[k] for k in order),
        options=dict(options or {}),
        skipped=dict(skipped[0]) if skipped else {}, skipped_examples=dict(skipped[1]) if skipped else {},
    )


INT64_MAX = 2**63 - 1


def check_id(value: int, where: str) -> int:
    """`value` if it is a non-negative int64 (what caches, views and seeds take), else a PipelineError naming `where`."""
    if not 0 <= value <= INT64_MAX:
        raise PipelineError(f"{where}: image id {value} is not a non-negative 64-bit integer (0..{INT64_MAX})")
    return value


def check_ids(ids: list, root) -> None:
    for value in ids:
        if isinstance(value, (int, np.integer)):
            check_id(int(value), str(root))


def check_split(split: str, splits: tuple[str, ...]) -> None:
    if split not in splits:
        raise PipelineError(f"--split: expected one of {', '.join(splits)}, found {split!r}")


def check_root(root: Path, title: str, hint: str = "use --download, or make-sample-dataset for a synthetic one") -> Path:
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(f"{root}: {title} directory not found ({hint})")
    return root


def check_images_exist(data: Dataset, listed_in: str) -> None:
    """Every row's image file exists, or a PipelineError naming the first missing one."""
    for i in range(len(data)):
        f = data.image_file(i)
        if not f.is_file():
            raise PipelineError(f"{f}: image {data.image_id[i]} listed in {listed_in} does not exist")


def nonempty(rows: list, where: Path | str, split: str) -> None:
    if not rows:
        raise PipelineError(f"{where}: no images in split {split!r}")


def rank_ids(keys) -> dict:
    """Stable 1-based integer ids for datasets without integer ids: the rank of each key in sorted order."""
    return {k: n for n, k in enumerate(sorted(set(keys)), 1)}
