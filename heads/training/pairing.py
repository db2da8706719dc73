"""Stage 2's pairing rule: which caches may be trained and tested together, and the hints its options get.

The contract (`pipeline.reader`) reads a cache and compares two caches in its own terms (files,
config keys, classes, image ids); this module decides which keys must match for a train/test pair,
names the option a path came from (--train, --test), and says which extract-features command makes
a missing cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from pipeline.errors import PipelineError
from pipeline.reader import MISSING_CACHE, FeatureCache, check_same_source, read_cache, shared_image_ids
from pipeline.schema import DEFAULT_PRECISION_OF_OLD_CACHES, cache_dataset, default_cache_path

# What must match between the training and the test cache. Whether spatial maps were stored is not
# compared: it leaves the pooled features unchanged, and a method that needs the maps checks for them.
# `model` is a PyTorch backbone's identity (its weights' hash or "random"); TF-Hub caches have none.
PAIRED_KEYS = ("format_version", "backbone", "image_size", "seed", "views", "preprocessing", "precision", "model")
PAIRED_DEFAULTS = {"precision": DEFAULT_PRECISION_OF_OLD_CACHES, "model": None}
# the dataset's reader options must match too (e.g. aircraft --aircraft-level); a CUB cache records none
PAIRED_SOURCE_KEYS = ("dataset", "level", "csv")
ROLE_SPLITS = {"--train": "train", "--test": "test"}  # the option a cache is given as -> the split it holds


def missing_cache_hint(path: Path, role: str | None = None) -> str:
    """'run extract-features --split test first' (with --out when the path is not the default)."""
    splits = [ROLE_SPLITS[role]] if role in ROLE_SPLITS else [s for s in ("train", "test", "all") if path.stem == s]
    for split in splits:
        out = "" if path == default_cache_path(split) else f" --out {path}"
        return f"run extract-features --split {split}{out} first"
    return f"run extract-features --split <train|test|all> --out {path} first"


def read_role_cache(path: str | os.PathLike, kinds: Iterable[str] | None = None, role: str | None = None) -> FeatureCache:
    """`pipeline.reader.read_cache`, each message starting with the option `role` (e.g. "--test") when
    given, and a missing file naming the extract-features command that makes it."""
    path = Path(path)
    try:
        return read_cache(path, kinds)
    except PipelineError as e:
        message = str(e)
        if message == f"{path}: {MISSING_CACHE}":
            message += f"; {missing_cache_hint(path, role)}"
        if role is None:
            raise PipelineError(message) from None
        raise PipelineError(f"{role} {message}") from None


def check_compatible(train: FeatureCache, test: FeatureCache) -> None:
    """Train and test caches must come from the same backbone, input size, views, precision and classes,
    and share no image."""
    check_same_dataset(train, test)
    check_same_source(train, test, PAIRED_KEYS, PAIRED_DEFAULTS)
    overlap = shared_image_ids(train, test)
    if len(overlap):
        raise PipelineError(f"{train.path} and {test.path} share {len(overlap)} image ids (e.g. {overlap[0]}); "
                            "the test cache must not overlap the training cache")


def check_same_dataset(train: FeatureCache, test: FeatureCache) -> None:
    """Both caches come from one dataset, read with the same options (config `source`; none means CUB)."""
    a, b = cache_dataset(train.config), cache_dataset(test.config)
    if a != b:
        raise PipelineError(f"{train.path} and {test.path} are caches of two datasets ({a} vs {b}); "
                            f"extract the training and the test split of one dataset")
    sa, sb = (c.config.get("source") or {} for c in (train, test))
    differ = [f"{k} ({sa.get(k)!r} vs {sb.get(k)!r})" for k in PAIRED_SOURCE_KEYS if sa.get(k) != sb.get(k)]
    if differ:
        raise PipelineError(f"{train.path} and {test.path} read {a} differently: {'; '.join(differ)}")
