"""Caches -> tensors: loading with checks, the stratified validation split, per-epoch views, batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from pipeline.cache import FEATURE_KINDS, SHUFFLED_KINDS, FeatureCache, check_compatible, read_cache
from pipeline.errors import PipelineError

Batch = dict[str, Tensor]


def check_finite(cache: FeatureCache) -> None:
    """Refuse NaN or inf anywhere in the loaded features, naming the cache, the array and a row."""
    for kind, arr in cache.features.items():
        finite = np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
        if not finite.all():
            rows = np.flatnonzero(~finite)
            raise PipelineError(f"{cache.path}: features/{kind} holds NaN or inf in {len(rows)} rows "
                                f"(first: row {rows[0]}, image_id {cache.image_id[rows[0]]}); re-extract this cache")


def check_labels(cache: FeatureCache) -> None:
    bad = (cache.label < 0) | (cache.label >= cache.num_classes)
    if bad.any():
        raise PipelineError(f"{cache.path}: label {cache.label[bad][0]} outside 0..{cache.num_classes - 1}")


def load_caches(train_path: str, test_path: str, needs: set[str], aux: str) -> tuple[FeatureCache, FeatureCache]:
    """Read and check both caches: complete, compatible, holding what `aux` needs, finite.

    The training cache brings its original features and the shuffled views in `needs`; the test
    cache only its original features (the test split is never shown a shuffled view).
    """
    kinds = ["original"] + [k for k in SHUFFLED_KINDS if k in needs]
    meta = read_cache(train_path, kinds=[])  # completeness and format, no arrays yet
    test = read_cache(test_path, kinds=["original"])
    check_compatible(meta, test)
    cached = meta.config["views"]["kinds"]
    for kind in kinds[1:]:
        if kind not in cached:
            raise PipelineError(f"--aux {aux} needs the {kind} views, which {meta.path} lacks "
                                f"(it holds {', '.join(cached)}); re-extract with extract-features --views "
                                  f"{','.join(k for k in FEATURE_KINDS if k in cached or k == kind)}")
    if "spatial" in needs:
        for cache, want in ((meta, {"original", "rcm"} & set(kinds)), (test, {"original"})):
            missing = sorted(want - set(cache.spatial_kinds))
            if missing:
                raise PipelineError(f"--aux {aux} needs spatial/{missing[0]}, which {cache.path} lacks; "
                                    "extract with extract-features --spatial")
    train = read_cache(train_path, kinds=kinds)
    for cache in (train, test):
        check_labels(cache)
        check_finite(cache)
    return train, test


def stratified_split(label: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, val_rows), sorted: round(fraction * n_c) rows of each class go to validation.

    Every class with at least 2 rows keeps at least one row on each side (when fraction > 0).
    """
    if not 0 <= fraction < 1:
        raise PipelineError(f"--val-fraction: expected a value in [0, 1), found {fraction}")
    rng = np.random.default_rng([int(seed), 7])
    val = []
    for c in np.unique(label):
        rows = np.flatnonzero(label == c)
        k = int(round(fraction * len(rows)))
        if fraction > 0 and len(rows) >= 2:
            k = min(max(k, 1), len(rows) - 1)
        val.append(rng.permutation(rows)[:k])
    val_rows = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train_rows = np.setdiff1d(np.arange(len(label)), val_rows)
    return train_rows.astype(np.int64), val_rows.astype(np.int64)


@dataclass
class Scaler:
    """Per-dimension standardisation with the training rows' original-feature statistics."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, features: np.ndarray, rows: np.ndarray) -> "Scaler":
        x = features[rows].astype(np.float64)
        return cls(torch.from_numpy(x.mean(0).astype(np.float32)),
                   torch.from_numpy(np.maximum(x.std(0), 1e-6).astype(np.float32)))

    @classmethod
    def identity(cls, dim: int) -> "Scaler":
        return cls(torch.zeros(dim), torch.ones(dim))

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def to(self, device: torch.device | str) -> "Scaler":
        return Scaler(self.mean.to(device), self.std.to(device))

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean.cpu(), "std": self.std.cpu()}


@dataclass
class FeatureTable:
    """One cache as tensors on the training device (views and permutations only when needed)."""

    cache: FeatureCache
    original: Tensor  # (N, D)
    label: Tensor  # (N,)
    views: dict[str, Tensor] = field(default_factory=dict)  # kind -> (N, V, D)
    perms: dict[str, Tensor] = field(default_factory=dict)  # kind -> (N, V, G*G) int16
    spatial: dict[str, Tensor] = field(default_factory=dict)  # kind -> (N, h, w, D) or (N, V, h, w, D) float16

    @classmethod
    def from_cache(cls, cache: FeatureCache, needs: set[str], device: torch.device | str) -> "FeatureTable":
        table = cls(cache, torch.from_numpy(cache.features["original"]).to(device),
                    torch.from_numpy(cache.label).to(device))
        for kind in SHUFFLED_KINDS:
            if kind in needs and kind in cache.features:
                table.views[kind] = torch.from_numpy(cache.features[kind]).to(device)
                table.perms[kind] = torch.from_numpy(cache.permutations[kind]).to(device)
        if "spatial" in needs:  # read once into memory as float16 (CUB train, V = 4: about 6 GB)
            for kind in cache.spatial_kinds:
                if kind == "original" or kind in table.views:
                    table.spatial[kind] = torch.from_numpy(cache.spatial(kind)).to(device)
        return table

    def __len__(self) -> int:
        return len(self.label)

    @property
    def num_views(self) -> int:
        return next(iter(self.views.values())).shape[1] if self.views else 0

    def _spatial(self, kind: str, idx: Tensor, view: Tensor | None) -> Tensor:
        """Raw maps of rows `idx` (and their drawn view) as float32; the method normalises them."""
        maps = self.spatial[kind][idx] if view is None else self.spatial[kind][idx, view]
        return maps.float()

    def batch(self, idx: Tensor, scaler: Scaler, view: Tensor | None = None) -> Batch:
        """Rows `idx`; with `view` (one index per row of the table) the shuffled views are added."""
        out: Batch = {"index": idx, "label": self.label[idx], "original": scaler(self.original[idx])}
        if "original" in self.spatial:
            out["spatial_original"] = self._spatial("original", idx, None)
        if view is not None:
            v = view[idx]
            for kind, views in self.views.items():
                out[kind] = scaler(views[idx, v])
                out[f"{kind}_perm"] = self.perms[kind][idx, v].long()
                if kind in self.spatial:
                    out[f"spatial_{kind}"] = self._spatial(kind, idx, v)
        return out


def train_batches(table: FeatureTable, rows: Tensor, batch_size: int, scaler: Scaler,
                  generator: torch.Generator) -> Iterator[Batch]:
    """One epoch: rows in a fresh seeded order, each image with one of its V views drawn for the epoch."""
    order = rows[torch.randperm(len(rows), generator=generator).to(rows.device)]
    view = None
    if table.views:
        view = torch.randint(table.num_views, (len(table),), generator=generator).to(rows.device)
    for start in range(0, len(order), batch_size):
        yield table.batch(order[start:start + batch_size], scaler, view)


def eval_batches(table: FeatureTable, rows: Tensor, batch_size: int, scaler: Scaler) -> Iterator[Batch]:
    """Rows in order; original features only."""
    for start in range(0, len(rows), batch_size):
        yield table.batch(rows[start:start + batch_size], scaler)
