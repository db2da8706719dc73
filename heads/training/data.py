"""Caches -> tensors: loading with checks, the stratified validation split, per-epoch views, batches.

Spatial maps (several GB at CUB scale) and the shuffled views' pooled features (1.6 GB per kind at
NABirds scale, 4 views) are held in memory when they fit a budget, else out of core: `MapStore` keeps an
uncompressed copy of each such array (in its cache dtype) in a scratch file and reads the rows a batch
needs with positioned reads, so their share of peak memory does not grow with the number of rows; what
still does is the original pooled feature, 8 KB per row (benchmarks/RESULTS.md). Both paths give the same
values, hence the same batches (`--maps-in-memory auto|yes|no` decides for maps and views alike).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Union

import h5py
import numpy as np
import torch
from torch import Tensor

from pipeline.errors import PipelineError
from pipeline.reader import FeatureCache
from pipeline.schema import FEATURE_KINDS, SHUFFLED_KINDS

from heads.scaling import floored_std
from heads.training.pairing import check_compatible, read_role_cache as read_cache

Batch = dict[str, Tensor]
MAPS_IN_MEMORY = ("auto", "yes", "no")
MAPS_MEMORY_BUDGET = 2 << 30  # auto: maps up to 2 GiB in all stay in memory (CPU)
VIEWS_MEMORY_BUDGET = 1 << 30  # auto: shuffled views' pooled features up to 1 GiB in all stay in memory (CPU)
STAGE_ROWS = 32  # rows per block when copying maps out of the cache
MAP_EVAL_ROWS = 256  # at most this many rows per evaluation batch that reads spatial maps (`eval_batches`)


def finite_rows(arr: np.ndarray, block: int = 4096) -> np.ndarray:
    """(N,) bool: which rows of `arr` hold no NaN or inf, checked a block of rows at a time (no array-sized mask)."""
    finite = np.ones(len(arr), dtype=bool)
    for lo in range(0, len(arr), block):
        finite[lo:lo + block] = np.isfinite(arr[lo:lo + block]).reshape(len(arr[lo:lo + block]), -1).all(axis=1)
    return finite


def check_finite(cache: FeatureCache) -> None:
    """Refuse NaN or inf anywhere in the loaded features, naming the cache, the array and a row."""
    for kind, arr in cache.features.items():
        finite = finite_rows(arr)
        if not finite.all():
            rows = np.flatnonzero(~finite)
            raise PipelineError(f"{cache.path}: features/{kind} holds NaN or inf in {len(rows)} rows "
                                f"(first: row {rows[0]}, image_id {cache.image_id[rows[0]]}); re-extract this cache")


def check_finite_blocks(cache: FeatureCache, name: str, arr: np.ndarray, block: int = 64, offset: int = 0) -> None:
    """Refuse NaN or inf in a large array (spatial maps), checked a block of rows at a time (no second copy);
    `arr` holds the cache's rows from `offset` on."""
    for lo in range(0, len(arr), block):
        finite = np.isfinite(arr[lo:lo + block]).reshape(min(block, len(arr) - lo), -1).all(axis=1)
        if not finite.all():
            row = offset + lo + int(np.flatnonzero(~finite)[0])
            raise PipelineError(f"{cache.path}: {name} holds NaN or inf (first: row {row}, image_id "
                                f"{cache.image_id[row]}); re-extract this cache")


def check_labels(cache: FeatureCache) -> None:
    bad = (cache.label < 0) | (cache.label >= cache.num_classes)
    if bad.any():
        raise PipelineError(f"{cache.path}: label {cache.label[bad][0]} outside 0..{cache.num_classes - 1}")


def load_caches(train_path: str, test_path: str, needs_by_aux: dict[str, set[str]],
                meta: FeatureCache | None = None) -> tuple[FeatureCache, FeatureCache]:
    """Read and check both caches once: complete, compatible, holding what every aux choice needs, finite.

    Both caches bring their original features only (the test split is never shown a shuffled view). The
    shuffled views and spatial maps a choice needs stay on disk here; `FeatureTable.from_cache` reads and
    checks them (in memory or out of core). `meta` is the training cache already read without arrays
    (`read_cache(train_path, kinds=[])`), when the caller has it.
    """
    if meta is None:  # completeness and format, no arrays yet
        meta = read_cache(train_path, kinds=[], role="--train")
    test = read_cache(test_path, kinds=["original"], role="--test")
    check_roles(meta, test)
    check_compatible(meta, test)
    cached = meta.config["views"]["kinds"]
    for aux, aux_needs in needs_by_aux.items():
        for kind in (k for k in SHUFFLED_KINDS if k in aux_needs):
            if kind not in cached:
                raise PipelineError(f"--aux {aux} needs the {kind} views, which {meta.path} lacks "
                                    f"(it holds {', '.join(cached)}); re-extract with extract-features --views "
                                    f"{','.join(k for k in FEATURE_KINDS if k in cached or k == kind)}")
        if "spatial" in aux_needs:
            for cache, want in ((meta, {"original", "rcm"} & ({"original"} | aux_needs)), (test, {"original"})):
                missing = sorted(want - set(cache.spatial_kinds))
                if missing:
                    raise PipelineError(f"--aux {aux} needs spatial/{missing[0]}, which {cache.path} lacks; "
                                        "extract with extract-features --spatial")
    train = read_cache(train_path, kinds=["original"], role="--train")  # views: FeatureTable.from_cache
    for cache in (train, test):
        check_labels(cache)
        check_finite(cache)
    return train, test


def check_roles(train: FeatureCache, test: FeatureCache) -> None:
    """A cache records its split: a test cache is never trained on, a train cache never tested on."""
    for cache, option, wrong in ((train, "--train", "test"), (test, "--test", "train")):
        split = cache.config.get("split")
        if split == wrong:
            raise PipelineError(f"{option} {cache.path}: is a cache of the {split} split; pass the "
                                f"{'training' if option == '--train' else 'test'} split's cache as {option} "
                                "(were --train and --test swapped?)")
    if train.config.get("split") == "all" or test.config.get("split") == "all":
        raise PipelineError(f"{train.path if train.config.get('split') == 'all' else test.path}: is a cache of split "
                            "'all' (train and test together); train-heads needs the official train and test splits "
                            "as separate caches")


def stratified_split(label: np.ndarray, fraction: float, seed: int,
                     per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, val_rows), sorted: round(fraction * n_c) rows of each class go to validation, or
    exactly `per_class` rows of each class when given (--val-per-class).

    Every class with at least 2 rows keeps at least one row on each side (when fraction > 0), and no class ever
    gives its last row to validation (a class of one row keeps it for training). When validation was asked for
    but no class can give a row, one line says so (the run would otherwise select nothing).
    """
    if not 0 <= fraction < 1:
        raise PipelineError(f"--val-fraction: expected a value in [0, 1), found {fraction}")
    if per_class is not None and per_class < 1:
        raise PipelineError(f"--val-per-class: expected a positive integer, found {per_class}")
    rng = np.random.default_rng([int(seed), 7])
    val = []
    classes = np.unique(label)
    for c in classes:
        rows = np.flatnonzero(label == c)
        k = int(round(fraction * len(rows))) if per_class is None else per_class
        if (per_class is not None or fraction > 0) and len(rows) >= 2:
            k = max(k, 1)
        val.append(rng.permutation(rows)[:min(k, len(rows) - 1)])
    val_rows = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    if (per_class is not None or fraction > 0) and len(classes) and not len(val_rows):
        asked = f"--val-per-class {per_class}" if per_class is not None else f"--val-fraction {fraction}"
        raise PipelineError(f"{asked}: no validation row can be held out: every one of the {len(classes)} classes has "
                            "a single training image, which it keeps for training; give more images per class (train-heads alone "
                            "can run without validation: --val-fraction 0 keeps the last epoch)")
    train_rows = np.setdiff1d(np.arange(len(label)), val_rows)
    return train_rows.astype(np.int64), val_rows.astype(np.int64)


def split_counts(label: np.ndarray, rows: np.ndarray, num_classes: int) -> dict[str, int]:
    """Per-class counts of `rows` (min, max) and how many of the cache's classes have none: what a run states."""
    counts = np.bincount(label[rows], minlength=num_classes) if len(rows) else np.zeros(num_classes, dtype=int)
    return {"min_per_class": int(counts.min()) if num_classes else 0, "max_per_class": int(counts.max()) if num_classes else 0,
            "classes_without_any": int((counts == 0).sum())}


def labelled_subset(label: np.ndarray, train_rows: np.ndarray, k: int | None,
                    seed: int) -> tuple[np.ndarray, dict[int, int]]:
    """(labelled rows, {class: rows it has} for classes with fewer than K training rows), sorted.

    K rows of each class keep their labels, drawn from one seeded permutation of that class's training
    rows, so the draws are nested: for one seed, the rows labelled at K = 2 are the first two of the
    rows labelled at K = 5. K = None (all) labels every training row.
    """
    if k is None or not len(train_rows):
        return np.asarray(train_rows, dtype=np.int64), {}
    keep, short = [], {}
    for c in np.unique(label[train_rows]):
        rows = np.sort(train_rows[label[train_rows] == c])
        order = np.random.default_rng([int(seed), 11, int(c)]).permutation(len(rows))
        keep.append(rows[order[:k]])
        if len(rows) < k:
            short[int(c)] = len(rows)
    return np.sort(np.concatenate(keep)).astype(np.int64), short


@dataclass
class Scaler:
    """Per-dimension standardisation with the training rows' original-feature statistics (std floored:
    `floored_std`); the shuffled views a method reads are standardised with the same statistics."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, features: np.ndarray, rows: np.ndarray, block: int = 256) -> "Scaler":
        """Mean and std (float64, then float32) of `rows`, a block of dimensions at a time: each dimension's
        reduction is numpy's over all rows, as on the whole array, so the figures are bit for bit the same,
        without a float64 copy of the rows whole (1.4 GB of transients at NABirds scale)."""
        dim = features.shape[1]
        mean, std = np.empty(dim), np.empty(dim)
        for lo, hi in _column_blocks(dim, block):
            x = features[rows, lo:hi].astype(np.float64)
            mean[lo:hi], std[lo:hi] = x.mean(0), x.std(0)
        return cls(torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(floored_std(std).astype(np.float32)))

    @classmethod
    def identity(cls, dim: int) -> "Scaler":
        return cls(torch.zeros(dim), torch.ones(dim))

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def to(self, device: torch.device | str) -> "Scaler":
        return Scaler(self.mean.to(device), self.std.to(device))

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean.cpu(), "std": self.std.cpu()}

def _column_blocks(dim: int, block: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges covering `dim` columns, none a single column unless `dim` is 1 (numpy sums a lone
    contiguous column pairwise, not row by row as it does a column of a wider array)."""
    bounds = list(range(0, dim, block)) + [dim]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        bounds[-2] -= 1
    return list(zip(bounds[:-1], bounds[1:]))


class MapStore:
    """One large array out of core: an uncompressed copy in a scratch file, read by row.

    Spatial maps (N, h, w, D) or (N, V, h, w, D), float16; or a shuffled kind's pooled features (N, V, D) or
    (N, V, G*G, D) (patches) in the cache's dtype (`views=True`). `read(rows, view)` returns the rows (and
    their view) in the order of `rows`, one item each: the same values an in-memory copy would give. The
    scratch file is deleted when the store is garbage-collected or the process exits.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], views: bool | None = None, dtype: Any = np.float16):
        self.path, self.shape = Path(path), tuple(int(n) for n in shape)
        self.has_views = len(self.shape) == 5 if views is None else views
        self.dtype = np.dtype(dtype)
        self.map_shape = self.shape[2:] if self.has_views else self.shape[1:]  # one item: a map, or a feature
        self.map_bytes = int(np.prod(self.map_shape)) * self.dtype.itemsize
        self.fd = os.open(self.path, os.O_RDONLY)
        self._finalizer = weakref.finalize(self, _close_and_remove, self.fd, self.path)

    def __len__(self) -> int:
        return self.shape[0]

    @classmethod
    def stage(cls, cache: FeatureCache, kind: str, directory: str | None = None, group: str = "spatial") -> "MapStore":
        """Copy `spatial/<kind>` (float16), or `features/<kind>` of a shuffled kind (its own dtype), into a
        scratch file a block of rows at a time, checking it finite."""
        name = f"{group}/{kind}"
        with h5py.File(cache.path, "r") as f:
            arr = f[name]
            dtype = np.float16 if group == "spatial" else arr.dtype

            def blocks() -> Iterator[np.ndarray]:
                for lo in range(0, arr.shape[0], STAGE_ROWS):
                    block = np.ascontiguousarray(arr[lo:lo + STAGE_ROWS], dtype=dtype)
                    check_finite_blocks(cache, name, block, offset=lo)
                    yield block

            return cls.write(arr.shape, blocks(), directory, f"{cache.path}: {name}", kind,
                             views=None if group == "spatial" else True, dtype=dtype)

    @classmethod
    def write(cls, shape: tuple[int, ...], blocks: Iterator[np.ndarray], directory: str | None, what: str,
              tag: str, views: bool | None = None, dtype: Any = np.float16) -> "MapStore":
        """A store of `shape` from row blocks (converted to `dtype`), in order, written to a new scratch file."""
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        where = directory or tempfile.gettempdir()
        free = shutil.disk_usage(where).free
        if need > free:
            raise PipelineError(f"{what} needs {need / 2**30:.1f} GiB of scratch space to be read out of core; "
                                f"{where} has {free / 2**30:.1f} GiB free (set TMPDIR, or --maps-in-memory yes)")
        fd, path = tempfile.mkstemp(prefix=f"heads-maps-{tag}-", suffix=f".{np.dtype(dtype).name}", dir=where)
        try:
            with os.fdopen(fd, "wb") as out:
                for block in blocks:
                    out.write(np.ascontiguousarray(block, dtype=dtype).tobytes())
        except BaseException:
            os.unlink(path)
            raise
        return cls(Path(path), shape, views, dtype)

    def _offsets(self, rows: np.ndarray, view: np.ndarray | None) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if self.has_views:
            if view is None:
                raise ValueError("a map array with views needs one view index per row")
            rows = rows * self.shape[1] + np.asarray(view, dtype=np.int64)
        return rows * self.map_bytes

    def read(self, rows: np.ndarray, view: np.ndarray | None = None, out: Tensor | None = None) -> Tensor:
        """(len(rows), *item) items of `rows` (and their `view`), into `out` when given (pinned memory)."""
        offsets = self._offsets(rows, view)
        if out is None:
            out = torch.from_numpy(np.empty((len(offsets), *self.map_shape), dtype=self.dtype))
        buf = out.numpy().reshape(len(offsets), -1).view(np.uint8)
        for i, offset in enumerate(offsets.tolist()):
            got = os.preadv(self.fd, [buf[i]], offset)
            if got != self.map_bytes:
                raise PipelineError(f"{self.path}: short read of row {offset // self.map_bytes} ({got} of "
                                    f"{self.map_bytes} bytes)")
        return out

    def close(self) -> None:
        self._finalizer()


def _close_and_remove(fd: int, path: Path) -> None:
    try:
        os.close(fd)
    finally:
        path.unlink(missing_ok=True)


MapArray = Union[Tensor, MapStore]


def keep_maps_in_memory(policy: str, nbytes: int, device: torch.device, budget: int = MAPS_MEMORY_BUDGET) -> bool:
    """--maps-in-memory: yes, no, or auto (in memory when the arrays fit `budget` on the CPU, MAPS_MEMORY_BUDGET
    for maps and VIEWS_MEMORY_BUDGET for views, or half of the free memory of a CUDA device)."""
    if policy not in MAPS_IN_MEMORY:
        raise PipelineError(f"--maps-in-memory: expected one of {', '.join(MAPS_IN_MEMORY)}, found {policy!r}")
    if policy != "auto":
        return policy == "yes"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= free // 2
    return nbytes <= budget


@dataclass
class FeatureTable:
    """One cache as tensors on the training device (views and permutations only when needed)."""

    cache: FeatureCache
    original: Tensor  # (N, D)
    label: Tensor  # (N,)
    views: dict[str, MapArray] = field(default_factory=dict)  # kind -> (N, V, D) ((N, V, G*G, D) patches)
    perms: dict[str, Tensor] = field(default_factory=dict)  # kind -> (N, V, G*G) int16
    spatial: dict[str, MapArray] = field(default_factory=dict)  # kind -> (N, h, w, D) or (N, V, h, w, D) float16
    maps_policy: str = "auto"  # --maps-in-memory
    scratch: str | None = None  # directory of out-of-core scratch files (None: TMPDIR)
    _derived: Any = field(default=None, repr=False)  # (key, table) of the last with_maps

    @classmethod
    def from_cache(cls, cache: FeatureCache, needs: set[str], device: torch.device | str,
                   maps_in_memory: str = "auto", scratch: str | None = None) -> "FeatureTable":
        """The arrays `needs` asks for, on `device`; spatial maps in memory or out of core (`keep_maps_in_memory`)."""
        device = torch.device(device)
        table = cls(cache, torch.from_numpy(cache.features["original"]).to(device),
                    torch.from_numpy(cache.label).to(device), maps_policy=maps_in_memory, scratch=scratch)
        kinds = [k for k in SHUFFLED_KINDS if k in needs and k in cache.config["views"]["kinds"]]
        in_memory = keep_maps_in_memory(maps_in_memory, sum(view_bytes(cache, k) for k in kinds), device,
                                        VIEWS_MEMORY_BUDGET)
        for kind in kinds:
            table.views[kind] = (load_views(cache, kind, device) if in_memory
                                 else MapStore.stage(cache, kind, scratch, group="features"))
            table.perms[kind] = torch.from_numpy(cache.permutations[kind]).to(device)
        if "spatial" in needs:
            kinds = [k for k in cache.spatial_kinds if k == "original" or k in table.views]
            nbytes = sum(map_bytes(cache, k) for k in kinds)
            in_memory = keep_maps_in_memory(maps_in_memory, nbytes, device)
            for kind in kinds:
                table.spatial[kind] = (load_maps(cache, kind, device) if in_memory
                                       else MapStore.stage(cache, kind, scratch))
        return table

    @property
    def maps_in_memory(self) -> bool | None:
        """True/False when the table holds spatial maps in memory/out of core; None without maps."""
        if not self.spatial:
            return None
        return not any(isinstance(m, MapStore) for m in self.spatial.values())

    @property
    def views_in_memory(self) -> bool | None:
        """True/False when the table holds the shuffled views in memory/out of core; None without views."""
        if not self.views:
            return None
        return not any(isinstance(v, MapStore) for v in self.views.values())

    def __len__(self) -> int:
        return len(self.label)

    def with_maps(self, transform: Callable[[Tensor], Tensor], channels: int, key: Any,
                  block: int = 256) -> "FeatureTable":
        """This table with every spatial map replaced by `transform(map)` (float32 (B, h, w, D) -> (B, h, w, N)),
        computed once, stored float16, in memory or out of core by the same rule as the maps; the last
        result is kept under `key` (a sweep's runs that share it compute it once)."""
        if self._derived is not None and self._derived[0] == key:
            return self._derived[1]
        self._derived = None  # free the previous one first
        device = self.original.device
        spatial: dict[str, MapArray] = {}
        in_memory = keep_maps_in_memory(self.maps_policy, sum(
            int(np.prod(m.shape[:-1])) * channels * 2 for m in self.spatial.values()), device)
        for kind, maps in self.spatial.items():
            shape = (*maps.shape[:-1], channels)
            blocks = self._transformed_blocks(kind, transform, block)
            if in_memory:
                spatial[kind] = torch.cat([torch.from_numpy(b) for b in blocks]).to(device).reshape(shape)
            else:
                spatial[kind] = MapStore.write(shape, blocks, self.scratch, f"spatial/{kind} (transformed)", kind)
        derived = FeatureTable(self.cache, self.original, self.label, self.views, self.perms, spatial,
                               self.maps_policy, self.scratch)
        self._derived = (key, derived)
        return derived

    @torch.no_grad()
    def _transformed_blocks(self, kind: str, transform: Callable[[Tensor], Tensor], block: int) -> Iterator[np.ndarray]:
        """float16 (rows, [V,] h, w, N) blocks of transform(maps), in row order."""
        maps = self.spatial[kind]
        views = maps.shape[1] if len(maps.shape) == 5 else 0
        for lo in range(0, len(maps), block):
            idx = torch.arange(lo, min(lo + block, len(maps)), device=self.original.device)
            if not views:
                yield transform(self.spatial_maps(kind, idx, None)).half().cpu().numpy()
                continue
            parts = [transform(self.spatial_maps(kind, idx, torch.full((len(idx),), v, device=idx.device)))
                     for v in range(views)]
            yield torch.stack(parts, 1).half().cpu().numpy()

    @property
    def num_views(self) -> int:
        return next(iter(self.views.values())).shape[1] if self.views else 0

    def _view(self, kind: str, idx: Tensor, view: Tensor) -> Tensor:
        """Pooled features of view `view` of rows `idx` (in the cache's dtype; the scaler makes them float32)."""
        views = self.views[kind]
        if isinstance(views, MapStore):
            return self._read(views, idx, view)
        return views[idx, view]

    def spatial_maps(self, kind: str, idx: Tensor, view: Tensor | None) -> Tensor:
        """Raw maps of rows `idx` (and their drawn view) as float32; the method normalises them."""
        maps = self.spatial[kind]
        if isinstance(maps, MapStore):
            return self._read(maps, idx, view).float()
        return (maps[idx] if view is None else maps[idx, view]).float()

    def _read(self, store: MapStore, idx: Tensor, view: Tensor | None) -> Tensor:
        """Rows `idx` (and their view) of an out-of-core array, on the table's device (from a pinned host
        buffer on CUDA, so the copy to the device runs asynchronously)."""
        device = self.original.device
        rows, v = idx.cpu().numpy(), None if view is None else view.cpu().numpy()
        pinned = None
        if device.type == "cuda":
            dtype = torch.from_numpy(np.empty(0, dtype=store.dtype)).dtype
            pinned = torch.empty((len(rows), *store.map_shape), dtype=dtype, pin_memory=True)
        return store.read(rows, v, pinned).to(device, non_blocking=True)

    def batch(self, idx: Tensor, scaler: Scaler, view: Tensor | None = None, needs: set[str] | None = None) -> Batch:
        """Rows `idx`; with `view` (one index per row of the table) the shuffled views are added.

        `needs` (a method's) limits the batch to what that method reads; None gives everything loaded.
        """
        out: Batch = {"index": idx, "label": self.label[idx], "original": scaler(self.original[idx])}
        spatial = needs is None or "spatial" in needs
        if spatial and "original" in self.spatial:
            out["spatial_original"] = self.spatial_maps("original", idx, None)
        if view is not None:
            v = view[idx]
            for kind, views in self.views.items():
                if needs is not None and kind not in needs:
                    continue
                out[kind] = scaler(self._view(kind, idx, v))
                out[f"{kind}_perm"] = self.perms[kind][idx, v].long()
                if spatial and kind in self.spatial:
                    out[f"spatial_{kind}"] = self.spatial_maps(kind, idx, v)
        return out


def view_bytes(cache: FeatureCache, kind: str) -> int:
    """Bytes of `features/<kind>` (a shuffled kind's pooled features) as stored."""
    with h5py.File(cache.path, "r") as f:
        arr = f[f"features/{kind}"]
        return int(np.prod(arr.shape)) * arr.dtype.itemsize


def load_views(cache: FeatureCache, kind: str, device: torch.device) -> Tensor:
    """`features/<kind>` whole (read now unless the cache was read with it), checked finite, on `device`."""
    name = f"features/{kind}"
    views = cache.features.get(kind)
    if views is None:
        with h5py.File(cache.path, "r") as f:
            views = f[name][...]
    check_finite_blocks(cache, name, views, block=4096)
    return torch.from_numpy(views).to(device)


def map_bytes(cache: FeatureCache, kind: str) -> int:
    """Bytes of `spatial/<kind>` as float16."""
    with h5py.File(cache.path, "r") as f:
        return int(np.prod(f[f"spatial/{kind}"].shape)) * 2


def load_maps(cache: FeatureCache, kind: str, device: torch.device) -> Tensor:
    """`spatial/<kind>` read whole, checked finite, on `device` (moved once)."""
    maps = cache.spatial(kind)
    check_finite_blocks(cache, f"spatial/{kind}", maps)
    return torch.from_numpy(maps).to(device)


class LabelledStream:
    """The labelled rows as an endless stream of batches: a fresh seeded permutation each pass, and a
    new pass whenever fewer than a batch of rows is left (so no batch holds a row twice)."""

    def __init__(self, rows: Tensor, batch_size: int, seed: int):
        self.rows, self.size = rows, min(batch_size, len(rows))
        self.generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + 17)  # not the epoch stream's
        self.order, self.pos = rows[:0], 0

    def take(self) -> Tensor:
        if len(self.order) - self.pos < self.size:
            self.order = self.rows[torch.randperm(len(self.rows), generator=self.generator).to(self.rows.device)]
            self.pos = 0
        out = self.order[self.pos:self.pos + self.size]
        self.pos += self.size
        return out


def train_batches(table: FeatureTable, rows: Tensor, batch_size: int, scaler: Scaler,
                  generator: torch.Generator, needs: set[str] | None = None,
                  labelled: LabelledStream | None = None, uses_unlabelled: bool = True) -> Iterator[Batch]:
    """One epoch: the training rows in a fresh seeded order, each image with one of its V views drawn for
    the epoch. Every batch carries two masks: "labelled" (rows whose label the cross-entropy may see)
    and "ssl" (rows the self-supervised losses see).

    With every training row labelled (`labelled` None) each batch is one slice of the epoch's order and
    both masks are all True. With a labelled subset (--labels-per-class K) there are two streams: the
    epoch runs over all training rows in batches of `batch_size` (the "ssl" part, labels hidden as -1),
    and each step adds min(batch_size, n_labelled) rows of the labelled stream (the "labelled" part).
    Epochs are counted on all training rows, so every method takes the same number of steps at a given
    K; a method without self-supervised losses (`uses_unlabelled` False) gets the labelled part only.

    The view draw happens only when the method reads shuffled views, so a run consumes the same random
    numbers whether its table was loaded for it alone or for a whole sweep.
    """
    order = rows[torch.randperm(len(rows), generator=generator).to(rows.device)]
    view = None
    wanted = table.views if needs is None else [k for k in table.views if k in needs]
    if wanted:
        view = torch.randint(table.num_views, (len(table),), generator=generator).to(rows.device)
    for start in range(0, len(order), batch_size):
        part = order[start:start + batch_size]
        if labelled is None:
            batch = table.batch(part, scaler, view, needs)
            batch["labelled"] = batch["ssl"] = torch.ones(len(part), dtype=torch.bool, device=part.device)
            yield batch
            continue
        lab = labelled.take()
        unl = part if uses_unlabelled else part[:0]
        batch = table.batch(torch.cat([lab, unl]), scaler, view, needs)
        batch["label"] = torch.cat([table.label[lab], torch.full_like(unl, -1)])  # unlabelled: no label at all
        flags = torch.cat([torch.ones(len(lab), dtype=torch.bool), torch.zeros(len(unl), dtype=torch.bool)])
        batch["labelled"], batch["ssl"] = flags.to(part.device), (~flags).to(part.device)
        yield batch


def eval_batches(table: FeatureTable, rows: Tensor, batch_size: int, scaler: Scaler,
                 needs: set[str] | None = None) -> Iterator[Batch]:
    """Rows in order; original features (and the original's spatial map when needed) only.

    A batch that reads spatial maps holds at most MAP_EVAL_ROWS rows: DCL's activations on 1,024 rows'
    maps weigh about 1.2 GB, twice a training step's, and each row's outputs do not depend on its batch."""
    if "original" in table.spatial and (needs is None or "spatial" in needs):
        batch_size = min(batch_size, MAP_EVAL_ROWS)
    for start in range(0, len(rows), batch_size):
        yield table.batch(rows[start:start + batch_size], scaler, None, needs)
