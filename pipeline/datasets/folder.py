"""A user's own labelled images: `ROOT/<split>/<class>/<image>`, or a CSV with columns path,label,split
(paths relative to the CSV's directory). Classes are the sorted class names over all splits.

Every file under ROOT/<split>/ is accounted for: an image row, or skipped for one of `SKIP_REASONS` (hidden files and
folders such as .DS_Store, ._x.jpg, .thumbnails/, __MACOSX/ are never a class or an image), with counts in
`Dataset.skipped` (printed by extract-features and recorded in the cache config's `source`). Names are normalised
once, here: class names to Unicode NFC (a class copied from macOS in NFD is the same class), CSV paths with
`os.path.normpath` (`./x.jpg` is `x.jpg`), so one file never carries two labels or sits in two splits.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from pathlib import Path

from ..decode import IMAGE_SUFFIXES
from ..errors import PipelineError
from .base import Dataset, Reader, check_images_exist, check_root, check_split, make_dataset, nonempty, rank_ids

SPLITS = ("train", "val", "trainval", "test", "all")  # trainval: train and val together (sweep-heads selects on val)
TREE_SPLITS = ("train", "val", "test")
HEADER = ("path", "label", "split")
SKIP_REASONS = ("hidden", "unsupported extension", "nested", "outside a class folder", "unreadable link",
                "unreadable", "empty class folder")
HIDDEN_NAMES = {"__MACOSX", "@eaDir", "Thumbs.db", "desktop.ini"}  # OS metadata that does not start with a dot


class Skipped:
    """What a reader saw and did not use: reason -> count, and the first example of each."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, str] = {}

    def add(self, reason: str, example: str, count: int = 1) -> None:
        if count:
            self.counts[reason] = self.counts.get(reason, 0) + count
            self.examples.setdefault(reason, example)


def is_hidden(name: str) -> bool:
    """A hidden file or folder (.DS_Store, ._x.jpg, .thumbnails) or OS metadata (__MACOSX, @eaDir, Thumbs.db)."""
    return name.startswith(".") or name in HIDDEN_NAMES


def class_name(name: str) -> str:
    """A class name as the dataset uses it: Unicode NFC, surrounding spaces removed."""
    return unicodedata.normalize("NFC", name).strip()


def _files_under(path: str) -> int:
    """Files under a folder (links not followed); at least 1, the folder itself, when it holds none."""
    count = sum(len(files) + sum(os.path.islink(os.path.join(d, n)) for n in dirs)
                for d, dirs, files in os.walk(path, onerror=lambda e: None))
    return max(count, 1)


def _scan_class(split: str, entry: os.DirEntry, skipped: Skipped) -> list[tuple[str, str, str]]:
    """The images of one class folder, every other entry counted in `skipped`."""
    rows, name = [], class_name(entry.name)
    for f in sorted(os.scandir(entry.path), key=lambda e: e.name):
        rel = f"{split}/{entry.name}/{f.name}"
        if is_hidden(f.name):
            skipped.add("hidden", rel, _files_under(f.path) if f.is_dir(follow_symlinks=False) else 1)
        elif f.is_symlink() and not os.path.exists(f.path):
            skipped.add("unreadable link", rel)
        elif f.is_dir():
            skipped.add("nested", rel + "/", 1 if f.is_symlink() else _files_under(f.path))
        elif not f.is_file():
            skipped.add("unreadable", rel)
        elif os.path.splitext(f.name)[1].lower() not in IMAGE_SUFFIXES:
            skipped.add("unsupported extension", rel)
        elif not os.access(f.path, os.R_OK):
            skipped.add("unreadable", rel)
        else:
            rows.append((rel, name, split))
    if not rows:
        skipped.add("empty class folder", f"{split}/{entry.name}/")
    return rows


def _tree_rows(root: Path, skipped: Skipped) -> list[tuple[str, str, str]]:
    """[(path relative to root, class, split)] of every image in ROOT/<split>/<class>/; the rest in `skipped`."""
    rows = []
    for split in TREE_SPLITS:
        if not (root / split).is_dir():
            continue
        for entry in sorted(os.scandir(root / split), key=lambda e: e.name):
            rel = f"{split}/{entry.name}"
            if is_hidden(entry.name):
                skipped.add("hidden", rel + ("/" if entry.is_dir() else ""),
                            _files_under(entry.path) if entry.is_dir(follow_symlinks=False) else 1)
            elif entry.is_symlink() and not os.path.exists(entry.path):
                skipped.add("unreadable link", rel)
            elif entry.is_dir():
                rows += _scan_class(split, entry, skipped)
            else:
                skipped.add("outside a class folder", rel)
    if not rows:
        raise PipelineError(f"{root}: no images in {root}/<train|val|test>/<class>/ (or give a CSV of {','.join(HEADER)})"
                            + (f"; {skipped_text(skipped.counts, skipped.examples)}" if skipped.counts else ""))
    return rows


def normal_path(path: str) -> str:
    """A CSV path as compared and opened: `os.path.normpath` (./x.jpg -> x.jpg, a//b -> a/b) in Unicode NFC for the
    comparison only (`_path_key`)."""
    return os.path.normpath(path).replace(os.sep, "/")


def _path_key(path: str) -> str:
    return unicodedata.normalize("NFC", normal_path(path))


def _csv_rows(path: Path, skipped: Skipped) -> tuple[list[tuple[str, str, str]], list[int]]:
    """([(path, label, split)], their line numbers) of a CSV file, every line checked; hidden files and unsupported
    extensions counted in `skipped`."""
    if not path.is_file():
        raise PipelineError(f"{path}: missing folder CSV file")
    rows, lines_of, seen = [], [], {}
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
        if split not in TREE_SPLITS:
            raise PipelineError(f"{path}:{lineno}: split {split!r}, expected one of {', '.join(TREE_SPLITS)}")
        p, label = normal_path(p), class_name(label)
        key = _path_key(p)
        if key in seen:
            first, first_label, first_split = seen[key]
            what = (f"one image in two splits ({first_split} and {split})" if first_split != split else
                    f"one image with two labels ({first_label!r} and {label!r})" if first_label != label else "listed twice")
            raise PipelineError(f"{path}:{lineno}: {p} already listed on line {first}: {what}")
        seen[key] = (lineno, label, split)
        if any(is_hidden(part) for part in p.split("/")):
            skipped.add("hidden", p)
        elif os.path.splitext(p)[1].lower() not in IMAGE_SUFFIXES:
            skipped.add("unsupported extension", p)
        else:
            rows.append((p, label, split))
            lines_of.append(lineno)
    if not rows:
        raise PipelineError(f"{path}: no rows after the header" + (f" ({skipped_text(skipped.counts, skipped.examples)})"
                                                                 if skipped.counts else ""))
    return rows, lines_of


def _check_same_file_once(base: Path, rows: list[tuple[str, str, str]], lines: list[int], table: Path) -> None:
    """Two CSV paths that are one file on disk (a link, a case-insensitive file system): one line naming both."""
    seen: dict[tuple[int, int], int] = {}
    for k, (p, label, split) in enumerate(rows):
        try:
            st = os.stat(base / p)
        except OSError:
            continue  # a missing file is check_images_exist's to name
        first = seen.setdefault((st.st_dev, st.st_ino), k)
        if first != k:
            p0, label0, split0 = rows[first]
            what = (f"one image in two splits ({split0} and {split})" if split0 != split else
                    f"one image with two labels ({label0!r} and {label!r})" if label0 != label else "listed twice")
            raise PipelineError(f"{table}:{lines[k]}: {p} is the same file as {p0} on line {lines[first]}: {what}")


def skipped_text(counts: dict[str, int], examples: dict[str, str] | None = None) -> str:
    """'3 files not used: hidden 2 (e.g. train/.thumbnails/), nested 1 (e.g. train/a/b/)'."""
    examples = examples or {}
    parts = [f"{reason} {counts[reason]}" + (f" (e.g. {examples[reason]})" if reason in examples else "")
             for reason in SKIP_REASONS if counts.get(reason)]
    total = sum(counts.values())
    return f"{total} {'entry' if total == 1 else 'entries'} not used: " + ", ".join(parts)


def load_folder(root: str | os.PathLike, split: str = "train", check_images: bool = True, csv: str | None = None) -> Dataset:
    """Read a folder tree at `root`, or the CSV `csv` (relative to `root` unless absolute)."""
    check_split(split, SPLITS)
    root = check_root(Path(root), "folder dataset", "expected ROOT/<split>/<class>/<image> or a CSV")
    table = root / csv if csv else None
    skipped = Skipped()
    if table:
        rows, lines = _csv_rows(table, skipped)
        if check_images:
            _check_same_file_once(table.parent, rows, lines, table)
    else:
        rows = _tree_rows(root, skipped)
    base = table.parent if table else root
    names = sorted({label for _, label, _ in rows})
    index = {n: c for c, n in enumerate(names)}
    ids = rank_ids(p for p, _, _ in rows)
    members = {"all": TREE_SPLITS, "trainval": ("train", "val")}.get(split, (split,))
    chosen = [r for r in rows if r[2] in members]
    nonempty(chosen, table or root / split, split)
    dataset = make_dataset("folder", root, split, [ids[p] for p, _, _ in chosen], [index[c] for _, c, _ in chosen],
                           [p for p, _, _ in chosen], names, [s for _, _, s in chosen], base,
                           options={"csv": str(csv)} if csv else {}, skipped=(skipped.counts, skipped.examples))
    if check_images:
        check_images_exist(dataset, table.name if table else "the folder tree")
    return dataset


READER = Reader(
    name="folder", title="image folder", load=load_folder, splits=SPLITS, dirname="folder",
    official_validation="val", options={"csv": None},
)
