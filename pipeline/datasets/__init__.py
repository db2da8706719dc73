"""Dataset readers behind one interface: `load_dataset(name, root, split, **options)` returns a `Dataset`
(rows sorted by a stable id, 0-based labels, class names, official splits, boxes where present).

`DATASETS[name]` is each dataset's `Reader`: its splits, its official validation split (the split to
select on, when the dataset has one), its default directory, and how to get it (`fetch_dataset`)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PipelineError
from . import aircraft, cars, cub, dogs, flowers102, folder, nabirds
from .base import Dataset, Reader

DATASETS: dict[str, Reader] = {m.READER.name: m.READER for m in (cub, aircraft, cars, dogs, flowers102, nabirds, folder)}
DEFAULT_DATASET = "cub"

__all__ = ["DATASETS", "DEFAULT_DATASET", "Dataset", "Reader", "fetch_dataset", "get_reader", "load_dataset"]


def get_reader(name: str) -> Reader:
    """The reader of dataset `name`, or a PipelineError listing the known names."""
    if name not in DATASETS:
        raise PipelineError(f"--dataset: expected one of {', '.join(DATASETS)}, found {name!r}")
    return DATASETS[name]


def load_dataset(name: str, root: str | os.PathLike, split: str, check_images: bool = True, **options) -> Dataset:
    """One split of dataset `name` at `root`; options are the reader's (e.g. aircraft's level)."""
    reader = get_reader(name)
    given = {k: v for k, v in options.items() if v is not None}
    for key, value in given.items():
        if key not in reader.options:
            raise PipelineError(f"{name}: no option {key!r} (options: {', '.join(reader.options) or 'none'})")
        allowed = reader.options[key]
        if allowed is not None and value not in allowed:
            raise PipelineError(f"{name} {key}: expected one of {', '.join(allowed)}, found {value!r}")
    return reader.load(root, split, check_images=check_images, **given)


def fetch_dataset(name: str, root: str | os.PathLike, progress: bool = True) -> Path:
    """Download and verify dataset `name` into `root` (a no-op when present); for a dataset without a public
    archive, a PipelineError saying which files to place where."""
    reader = get_reader(name)
    if reader.download is None:
        raise PipelineError(reader.placement.format(root=root) if reader.placement
                            else f"{name}: nothing to download; point the reader at your own files")
    return reader.download(Path(root), progress=progress)


def cache_source(data: Dataset) -> dict | None:
    """What a cache records of its dataset and split definition (`CacheConfig.source`): the dataset, the
    reader's options, the official splits its rows cover and the official validation split. None for
    CUB-200-2011, whose caches have always been recognised without it (their config_hash stays as it was)."""
    if data.name == DEFAULT_DATASET and not data.options:
        return None
    reader = get_reader(data.name)
    source = {"dataset": data.name, **{k: data.options[k] for k in sorted(data.options)},
              "official_splits": sorted(set(data.official_split)), "official_validation": reader.official_validation}
    if data.skipped:  # the files the reader saw and did not use, by reason (only when there are any: caches of
        source["skipped"] = {k: data.skipped[k] for k in sorted(data.skipped)}  # trees without any keep their hash)
    return source


def cache_official_split(data: Dataset) -> list[str] | None:
    """Per row, the official split (train / val / test), for datasets that have an official validation split."""
    return list(data.official_split) if get_reader(data.name).official_validation else None
