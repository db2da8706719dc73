"""A user's own labelled images: `ROOT/<split>/<class>/<image>`, or a CSV with columns path,label,split
(paths relative to the CSV's directory). Classes are the sorted class names over all splits."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..errors import PipelineError
from .base import Dataset, Reader, check_images_exist, check_root, check_split, make_dataset, nonempty, rank_ids

SPLITS = ("train", "val", "test", "all")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
HEADER = ("path", "label", "split")


def _tree_rows(root: Path) -> list[tuple[str, str, str]]:
    """[(path relative to root, class, split)] of every image in ROOT/<split>/<class>/."""
    rows = []
    for split in SPLITS[:-1]:
        for class_dir in sorted(p for p in (root / split).glob("*") if p.is_dir()):
            rows += [(f"{split}/{class_dir.name}/{f.name}", class_dir.name, split) for f in sorted(class_dir.iterdir())
                     if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    if not rows:
        raise PipelineError(f"{root}: no images in {root}/<train|val|test>/<class>/ (or give a CSV of {','.join(HEADER)})")
    return rows


def _csv_rows(path: Path) -> list[tuple[str, str, str]]:
    """[(path, label, split)] of a CSV file, every line checked."""
    if not path.is_file():
        raise PipelineError(f"{path}: missing folder CSV file")
    rows, seen = [], {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise PipelineError(f"{path}: not a readable UTF-8 CSV file ({e})") from None
    if not lines or tuple(c.strip() for c in lines[0]) != HEADER:
        raise PipelineError(f"{path}:1: expected the header '{','.join(HEADER)}', found {','.join(lines[0]) if lines else 'nothing'!r}")
    for lineno, fields in enumerate(lines[1:], 2):
        if not any(c.strip() for c in fields):
            continue
        p, label, split = (c.strip() for c in fields) if len(fields) == 3 else ("", "", "")
        if not (p and label and split):
            raise PipelineError(f"{path}:{lineno}: expected 'path,label,split', found {','.join(fields)!r}")
        if split not in SPLITS[:-1]:
            raise PipelineError(f"{path}:{lineno}: split {split!r}, expected one of {', '.join(SPLITS[:-1])}")
        if p in seen:
            raise PipelineError(f"{path}:{lineno}: {p} already listed on line {seen[p]}")
        seen[p] = lineno
        rows.append((p, label, split))
    if not rows:
        raise PipelineError(f"{path}: no rows after the header")
    return rows


def load_folder(root: str | os.PathLike, split: str = "train", check_images: bool = True, csv: str | None = None) -> Dataset:
    """Read a folder tree at `root`, or the CSV `csv` (relative to `root` unless absolute)."""
    check_split(split, SPLITS)
    root = check_root(Path(root), "folder dataset", "expected ROOT/<split>/<class>/<image> or a CSV")
    table = root / csv if csv else None
    rows = _csv_rows(table) if table else _tree_rows(root)
    base = table.parent if table else root
    names = sorted({label for _, label, _ in rows})
    index = {n: c for c, n in enumerate(names)}
    ids = rank_ids(p for p, _, _ in rows)
    chosen = [r for r in rows if split in (r[2], "all")]
    nonempty(chosen, table or root / split, split)
    dataset = make_dataset("folder", root, split, [ids[p] for p, _, _ in chosen], [index[c] for _, c, _ in chosen],
                           [p for p, _, _ in chosen], names, [s for _, _, s in chosen], base,
                           options={"csv": str(csv)} if csv else {})
    if check_images:
        check_images_exist(dataset, table.name if table else "the folder tree")
    return dataset


READER = Reader(
    name="folder", title="image folder", load=load_folder, splits=SPLITS, dirname="folder",
    official_validation="val", options={"csv": None},
)
