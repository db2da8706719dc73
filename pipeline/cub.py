"""CUB-200-2011 reader: every metadata file joined on image_id, 0-based labels, official split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import PipelineError

SPLITS = ("train", "test", "all")
METADATA_FILES = (
    "images.txt",
    "classes.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
)


@dataclass(frozen=True)
class CubSplit:
    """One split of CUB-200-2011, rows sorted by image_id."""

    root: Path
    split: str
    image_id: np.ndarray  # (N,) int64, 1-based CUB ids
    label: np.ndarray  # (N,) int64, 0-based class index
    path: list[str]  # relative to root/images
    is_train: np.ndarray  # (N,) bool
    bbox: np.ndarray  # (N, 4) float64, x y w h in pixels
    class_names: list[str]  # (C,), class index c -> name from classes.txt

    def __len__(self) -> int:
        return len(self.image_id)

    def image_file(self, i: int) -> Path:
        return self.root / "images" / self.path[i]


def _decode_line(path: Path, lineno: int, raw: bytes) -> str:
    """One line as UTF-8 text (a BOM on the first line is allowed), or a PipelineError naming file and line."""
    try:
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as e:
        shown = raw[:e.start].decode("utf-8", errors="replace").strip()
        raise PipelineError(
            f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}"
            + (f", after {shown[-40:]!r}" if shown else "") + "); save the file as UTF-8"
        ) from None


def _read_table(path: Path, columns: str, types: tuple) -> dict[int, tuple]:
    """Parse a whitespace-separated `<id> <fields...>` file into {id: fields}, checking every line."""
    if not path.is_file():
        raise PipelineError(f"{path}: missing CUB metadata file")
    rows: dict[int, tuple] = {}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            text = _decode_line(path, lineno, raw).strip()
            if not text:
                continue
            # class names and paths contain no spaces in CUB; split at most len(types) times
            parts = text.split(maxsplit=len(types) - 1)
            try:
                if len(parts) != len(types):
                    raise ValueError
                values = tuple(t(p) for t, p in zip(types, parts))
            except ValueError:
                raise PipelineError(
                    f"{path}:{lineno}: expected '{columns}', found {text!r}"
                ) from None
            key = values[0]
            if key in rows:
                raise PipelineError(f"{path}:{lineno}: id {key} listed twice")
            rows[key] = values[1:]
    if not rows:
        raise PipelineError(f"{path}: file is empty, expected lines of '{columns}'")
    return rows


def _check_same_ids(reference: dict, ref_name: Path, other: dict, other_name: Path) -> None:
    missing = sorted(set(reference) - set(other))
    if missing:
        raise PipelineError(
            f"{other_name}: image_id {missing[0]} from {ref_name.name} is absent"
            + (f" ({len(missing)} ids absent)" if len(missing) > 1 else "")
        )
    extra = sorted(set(other) - set(reference))
    if extra:
        raise PipelineError(
            f"{other_name}: image_id {extra[0]} is not listed in {ref_name.name}"
            + (f" ({len(extra)} unknown ids)" if len(extra) > 1 else "")
        )


def load_cub(root: str | os.PathLike, split: str = "train", check_images: bool = True) -> CubSplit:
    """Read CUB-200-2011 at `root` (the directory holding images.txt) and return one split.

    Every file is joined on image_id; labels are classes.txt ids minus one; rows are sorted by
    image_id. Raises PipelineError naming the file (and line) for anything malformed or missing.
    """
    if split not in SPLITS:
        raise PipelineError(f"--split: expected one of {', '.join(SPLITS)}, found {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(
            f"{root}: CUB-200-2011 directory not found "
            "(use --download, or make-sample-dataset for a synthetic one)"
        )
    f_images, f_classes, f_labels, f_split, f_bbox = (root / n for n in METADATA_FILES)
    images = _read_table(f_images, "<image_id> <relative_path>", (int, str))
    classes = _read_table(f_classes, "<class_id> <class_name>", (int, str))
    labels = _read_table(f_labels, "<image_id> <class_id>", (int, int))
    is_train = _read_table(f_split, "<image_id> <is_training_image>", (int, int))
    bbox = _read_table(f_bbox, "<image_id> <x> <y> <width> <height>", (int, float, float, float, float))

    class_ids = sorted(classes)
    if class_ids != list(range(1, len(class_ids) + 1)):
        raise PipelineError(
            f"{f_classes}: expected class ids 1..{len(class_ids)}, found {class_ids[:3]}...{class_ids[-1]}"
        )
    for other, name in ((labels, f_labels), (is_train, f_split), (bbox, f_bbox)):
        _check_same_ids(images, f_images, other, name)
    for image_id, (class_id,) in labels.items():
        if class_id not in classes:
            raise PipelineError(f"{f_labels}: image_id {image_id} has class_id {class_id}, not in {f_classes.name}")
    for image_id, (flag,) in is_train.items():
        if flag not in (0, 1):
            raise PipelineError(f"{f_split}: image_id {image_id} has is_training_image {flag}, expected 0 or 1")

    ids = sorted(images)
    if split != "all":
        want = 1 if split == "train" else 0
        ids = [i for i in ids if is_train[i][0] == want]
    if not ids:
        raise PipelineError(f"{f_split}: no images in split {split!r}")
    paths = [images[i][0] for i in ids]
    if check_images:
        for i, p in zip(ids, paths):
            if not (root / "images" / p).is_file():
                raise PipelineError(f"{root / 'images' / p}: image {i} listed in {f_images.name} does not exist")
    return CubSplit(
        root=root,
        split=split,
        image_id=np.asarray(ids, dtype=np.int64),
        label=np.asarray([labels[i][0] - 1 for i in ids], dtype=np.int64),
        path=paths,
        is_train=np.asarray([is_train[i][0] == 1 for i in ids], dtype=bool),
        bbox=np.asarray([bbox[i] for i in ids], dtype=np.float64).reshape(-1, 4),
        class_names=[classes[c][0] for c in class_ids],
    )


def display_name(class_name: str) -> str:
    """'017.Cardinal' -> 'Cardinal'; 'Black_footed_Albatross' -> 'Black footed Albatross'."""
    head, sep, tail = class_name.partition(".")
    name = tail if sep and head.isdigit() else class_name
    return name.replace("_", " ")
