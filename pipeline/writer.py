"""Writing a feature cache (schema: `pipeline.schema`), crash-safe and resumable.

One writer per file (`pipeline.files.lock_output`); a new file is built under a temporary name and
renamed into place once its skeleton is complete (`pipeline.files.created_atomically`); rows are
written in chunks with a done mask, and `complete` is set last.

A full disk: each block is checked against the free space before it is written (one DiskFull line naming the
file and the bytes), and a write that fails anyway leaves `<cache>.damaged` beside the file (an empty file:
it can be made on a full disk). HDF5's state after a failed write is not to be trusted, so the next writer
that opens a file so marked rebuilds it from its finished rows into a fresh file before resuming (`_rebuild`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from .diff import diff_keys
from .errors import PipelineError
from .files import (OutputLock, OutputNotWritable, created_atomically, disk_full, is_disk_full, lock_output,
                    remove_stale_temporaries)
from .reader import open_hdf5
from .schema import SHUFFLED_KINDS, CacheLayout, Shard, array_specs, config_hash, root_attrs

_STR = h5py.string_dtype("utf-8")
DAMAGED = ".damaged"  # beside a cache whose write failed: rebuilt from its finished rows before it is resumed
SPARE_BYTES = 1 << 20  # besides a block's own bytes, free space a write needs (HDF5 metadata)
ROW_BLOCK = 64  # rows per copy when a damaged file is rebuilt


def damaged_marker(path: Path) -> Path:
    return Path(str(path) + DAMAGED)


def _create(path: Path, layout: CacheLayout) -> None:
    """Write the skeleton (metadata, permutations, empty arrays, complete=False) under a temporary
    name and rename it onto `path`: `path` never holds a file that cannot be opened and resumed."""
    with created_atomically(path) as tmp:
        _write_skeleton(tmp, layout)


def write_row_metadata(f: h5py.File, layout: CacheLayout, done: bool = False) -> None:
    """image_id, label, path, class_names, done, official_split (when the dataset has one), the
    permutations and the patch offsets: everything known before extraction."""
    f.create_dataset("image_id", data=np.asarray(layout.image_id, dtype=np.int64))
    f.create_dataset("label", data=np.asarray(layout.label, dtype=np.int64))
    f.create_dataset("path", data=np.asarray(layout.paths, dtype=object), dtype=_STR)
    f.create_dataset("class_names", data=np.asarray(layout.class_names, dtype=object), dtype=_STR)
    f.create_dataset("done", data=np.full(len(layout.image_id), done, dtype=bool))
    if layout.official_split is not None:
        f.create_dataset("official_split", data=np.asarray(layout.official_split, dtype=object), dtype=_STR)
    for kind in layout.kinds:
        if kind in SHUFFLED_KINDS:
            f.create_dataset(f"permutations/{kind}", data=layout.permutations[kind].astype(np.int16))
        if kind in layout.offsets:
            f.create_dataset(f"offsets/{kind}", data=layout.offsets[kind].astype(np.int16))


def _write_skeleton(path: Path, layout: CacheLayout) -> None:
    with h5py.File(path, "w") as f:
        write_row_metadata(f, layout)
        for spec in array_specs(layout):
            f.create_dataset(spec.name, shape=spec.shape, dtype=spec.dtype, **spec.storage)
        for key, value in root_attrs(layout).items():
            f.attrs[key] = value


class CacheWriter:
    """Writes rows in chunks with a done mask; `complete` is set last, by finish().

    It holds the file's write lock (`pipeline.files.lock_output`) from open() until finish() or close().
    """

    def __init__(self, path: Path, status: str, lock: OutputLock | None = None):
        self.path = Path(path)
        self.status = status  # "new", "resumed" or "complete"
        self._file: h5py.File | None = None
        self._lock = lock
        self._datasets: dict[str, h5py.Dataset] = {}  # held open: HDF5's write errors then reach flush(), not a
        # temporary Dataset's __dealloc__ (where h5py can only print them and the rows would be marked done)

    @classmethod
    def open(cls, path: str | os.PathLike, layout: CacheLayout, overwrite: bool = False) -> "CacheWriter":
        """Create the file, resume an incomplete one with the same config, or refuse a different one.

        Takes the file's exclusive write lock first: while another process writes `path`, this
        raises PipelineError and leaves the file alone, with or without `overwrite`.
        """
        path = Path(path)
        if path.is_dir():
            raise PipelineError(f"{path}: is a directory; give a file path for the cache, e.g. {path / 'train.h5'}")
        try:
            lock = lock_output(path)
        except OutputNotWritable:
            if overwrite or not _complete_as_asked(path, layout):
                raise
            return cls(path, "complete")  # nothing to write: a read-only directory is no obstacle
        try:
            writer = cls._open_locked(path, layout, overwrite)
        except BaseException:
            lock.release()
            raise
        if writer.status == "complete":
            lock.release()
        else:
            writer._lock = lock
        return writer

    @classmethod
    def _open_locked(cls, path: Path, layout: CacheLayout, overwrite: bool) -> "CacheWriter":
        remove_stale_temporaries(path)  # left by a writer killed while creating the file
        status = "new"
        if path.exists() and not overwrite:
            try:
                with open_hdf5(path) as f:
                    old = json.loads(f.attrs["config"])
                    complete = bool(f.attrs["complete"]) and bool(f["done"][...].all())  # the mask, not the flag
                    old_shard = Shard.from_attrs(f.attrs)
            except PipelineError as e:
                raise PipelineError(f"{e}; use --overwrite to replace it") from None
            except (OSError, KeyError, ValueError):
                raise PipelineError(f"{path}: exists but is not a feature cache of this tool; use --overwrite to replace it") from None
            if config_hash(old) != config_hash(layout.config):
                differ = diff_keys(old, layout.config)
                raise PipelineError(
                    f"{path}: was written with a different configuration: {'; '.join(differ)}. "
                    "Use --overwrite to replace it, or --out for a new file"
                )
            if old_shard != layout.shard:
                raise PipelineError(f"{path}: {_shard_mismatch(old_shard, layout.shard)}; use --overwrite to replace it")
            status = "complete" if complete else "resumed"
            if status == "resumed" and damaged_marker(path).exists():
                _rebuild(path, layout)
        if status == "new":
            _create(path, layout)  # atomically replaces an existing file (--overwrite)
        damaged_marker(path).unlink(missing_ok=True)
        writer = cls(path, status)
        if status != "complete":
            writer._file = h5py.File(path, "r+")
            writer._file.attrs["complete"] = False  # a flag set over unwritten rows is taken back until they are
        return writer

    def pending(self) -> np.ndarray:
        """Row indices not written yet."""
        if self._file is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(~self._file["done"][...])

    def write(self, rows: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        """Write `arrays` (keys like 'features/jigsaw', 'spatial/rcm') for contiguous `rows`, then mark them done.

        Refused before any byte when the disk lacks the block's (uncompressed) bytes; a write that fails marks the
        file damaged (rebuilt from its finished rows when next opened)."""
        assert self._file is not None, "cache is complete or closed"
        rows = np.asarray(rows)
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        if hi - lo != len(rows):
            raise ValueError("rows must be contiguous")
        need = sum(int(np.asarray(v).nbytes) for v in arrays.values()) + SPARE_BYTES
        if shutil.disk_usage(self.path.parent).free < need:
            raise disk_full(self.path, need, f"writing rows {lo}..{hi - 1}")
        try:
            for name, value in arrays.items():
                self._dataset(name)[lo:hi] = value
            self._file.flush()
            self._dataset("done")[lo:hi] = True
            self._file.flush()
        except BaseException as e:
            damaged_marker(self.path).touch()
            if is_disk_full(e):
                raise disk_full(self.path, need, f"writing rows {lo}..{hi - 1}") from None
            raise

    def _dataset(self, name: str) -> h5py.Dataset:
        if name not in self._datasets:
            self._datasets[name] = self._file[name]
        return self._datasets[name]

    def finish(self) -> None:
        """Set `complete` once every row is written; close."""
        if self._file is None:
            return
        left = int((~self._file["done"][...]).sum())
        if left:
            self.close()
            raise PipelineError(f"{self.path}: {left} rows not written; rerun to resume")
        self._file.attrs["complete"] = True
        self.close()

    def close(self) -> None:
        """Close the file (a close that fails after a failed write marks it damaged) and release the lock."""
        self._datasets.clear()
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, RuntimeError):
                damaged_marker(self.path).touch()
            self._file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _complete_as_asked(path: Path, layout: CacheLayout) -> bool:
    """Whether `path` already is a complete cache of `layout`'s configuration and shard (read without a lock)."""
    try:
        with open_hdf5(path) as f:
            return (bool(f.attrs["complete"]) and f.attrs["config_hash"] == config_hash(layout.config)
                    and Shard.from_attrs(f.attrs) == layout.shard)
    except (PipelineError, OSError, KeyError, ValueError):
        return False


def _shard_mismatch(old: Shard | None, new: Shard | None) -> str:
    if old is None:
        return f"holds a whole split's cache, not {new.describe()}"  # type: ignore[union-attr]
    if new is None:
        return (f"holds {old.describe()} of a sharded extraction, not a whole split (merge the shards with "
                "merge-caches, or extract into another --out)")
    hint = " (another --batch-size or --views makes other blocks)" if old.block != new.block else ""
    return f"holds {old.describe()}, but this command's shard is {new.describe()}{hint}"




def _rebuild(path: Path, layout: CacheLayout) -> None:
    """A fresh file of `layout` holding the finished rows of the damaged file at `path`, renamed onto it; when the
    damaged file cannot even be read, a fresh file with no row finished (the run then extracts every row)."""
    with created_atomically(path) as tmp:
        _write_skeleton(tmp, layout)
        try:
            with h5py.File(path, "r") as old, h5py.File(tmp, "r+") as new:
                done = old["done"][...]
                names = [spec.name for spec in array_specs(layout)]
                for lo in range(0, len(done), ROW_BLOCK):
                    hi = min(lo + ROW_BLOCK, len(done))
                    keep = np.flatnonzero(done[lo:hi]) + lo
                    for r0, r1 in _runs(keep):
                        for name in names:
                            new[name][r0:r1] = old[name][r0:r1]
                        new["done"][r0:r1] = True
        except (OSError, RuntimeError, KeyError, ValueError):
            with h5py.File(tmp, "r+") as new:  # unreadable: start over
                new["done"][...] = False


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) ranges of consecutive row numbers."""
    if not len(rows):
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts = np.concatenate([[rows[0]], rows[breaks + 1]])
    ends = np.concatenate([rows[breaks], [rows[-1]]]) + 1
    return list(zip(starts.tolist(), ends.tolist()))
