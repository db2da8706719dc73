"""No image in two splits: every row of a dataset (all its splits, read once through its reader) names a different
file, or one PipelineError naming the file and both splits; and the same image bytes under two paths (a content
hash) are found and said. Run by extract-features before the backbone loads and by the study's dataset stage; the
outcome is a cache attribute (`input_check`) the study's report states.

Paths are compared normalised (`os.path.normpath`, Unicode NFC); bytes are hashed only for files whose size another
file shares (sha256), so a dataset of unique sizes costs one stat per file.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PipelineError
from .base import Dataset

LISTED_IN = {"cub": "images.txt", "nabirds": "images.txt", "folder": "", "flowers102": "setid.mat",
             "aircraft": "data", "cars": "devkit", "dogs": ""}  # where each reader's rows are listed, under its root


@dataclass(frozen=True)
class InputCheck:
    """What the check found over every split of a dataset."""

    files: int  # rows over all splits, each a different file
    identical: list[tuple[str, str, str, str]] = field(default_factory=list)  # (path, split, path, split) pairs

    @property
    def across_splits(self) -> list[tuple[str, str, str, str]]:
        return [p for p in self.identical if p[1] != p[3]]

    def line(self) -> str:
        """One line for the output and the report."""
        head = f"input check: {self.files} files over all splits, each listed once and in one split"
        if not self.identical:
            return head + "; no two files with identical bytes"
        across = self.across_splits
        first = (across or self.identical)[0]
        return (head + f"; WARNING: {len(self.identical)} pair{'s' * (len(self.identical) != 1)} of files with identical "
                f"bytes under two paths, {len(across)} of them across splits (e.g. {first[0]} ({first[1]}) = {first[2]} "
                f"({first[3]}))")

    def record(self) -> dict:
        """The cache attribute `input_check`."""
        return {"files": self.files, "identical_pairs": len(self.identical),
                "identical_across_splits": len(self.across_splits),
                "examples": [list(p) for p in (self.across_splits or self.identical)[:5]]}


def path_key(path: str) -> str:
    """How two paths are compared: normalised (./x.jpg is x.jpg) and in Unicode NFC."""
    return unicodedata.normalize("NFC", os.path.normpath(path))


def check_one_split_per_file(data: Dataset, listed_in: str | None = None) -> None:
    """Each row of `data` (every split) names another file, or one line naming the file, its ids and splits."""
    where = data.root / (listed_in or data.options.get("csv") or LISTED_IN.get(data.name, ""))
    seen: dict[str, int] = {}
    for i, path in enumerate(data.path):
        k = seen.setdefault(path_key(path), i)
        if k == i:
            continue
        a, b = data.official_split[k], data.official_split[i]
        what = (f"one image in two splits ({a} and {b})" if a != b else
                f"one image with two labels ({data.class_names[data.label[k]]!r} and {data.class_names[data.label[i]]!r})"
                if data.label[k] != data.label[i] else f"listed twice in {a}")
        raise PipelineError(f"{where}: {path} is listed as image_id {data.image_id[k]} ({a}) and as image_id "
                            f"{data.image_id[i]} ({b}): {what}; remove one")


def identical_files(files: list[Path]) -> list[list[int]]:
    """Groups (of 2 or more indices into `files`) of files with identical bytes; missing files are left out."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, f in enumerate(files):
        try:
            by_size[os.stat(f).st_size].append(i)
        except OSError:
            continue
    groups: list[list[int]] = []
    for members in by_size.values():
        if len(members) < 2:
            continue
        by_hash: dict[str, list[int]] = defaultdict(list)
        for i in members:
            try:
                by_hash[_sha256(files[i])].append(i)
            except OSError:
                continue
        groups += [g for g in by_hash.values() if len(g) > 1]
    return sorted(groups)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_dataset(name: str, root: str | os.PathLike, **options) -> InputCheck:
    """Read every split of dataset `name` at `root` (without opening images) and check it: a file in two splits (or
    under two ids) is a PipelineError; identical bytes under two paths are found and returned."""
    from . import load_dataset

    data = load_dataset(name, root, "all", check_images=False, **options)
    check_one_split_per_file(data)
    files = [data.image_file(i) for i in range(len(data))]
    pairs = []
    for group in identical_files(files):
        for j in group[1:]:
            pairs.append((data.path[group[0]], data.official_split[group[0]], data.path[j], data.official_split[j]))
    return InputCheck(len(data), pairs)

