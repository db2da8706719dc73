"""HDF5 feature cache: the contract between stage 1 (writer) and stage 2 (reader).

One file per split. Schema (format_version 1), N rows sorted by image_id, V views per image:

    image_id               (N,)          int64   CUB image id (1-based)
    label                  (N,)          int64   0-based class index
    path                   (N,)          utf-8   image path relative to images/
    class_names            (C,)          utf-8   class index -> name from classes.txt
    done                   (N,)          bool    rows already written (resume mask)
    features/original      (N, D)        float32
    features/jigsaw        (N, V, D)     float32
    features/rcm           (N, V, D)     float32
    permutations/jigsaw    (N, V, G*G)   int16   perm[p] = original tile now at position p
    permutations/rcm       (N, V, R*R)   int16   same convention
    spatial/original       (N, h, w, D)  float16 only with --spatial
    spatial/rcm            (N, V, h, w, D) float16 only with --spatial

Root attributes: format_version, backbone, backbone_weights, image_size, split, seed, views (JSON),
config (JSON), config_hash, complete, created_by, feature_dim, num_rows; with spatial maps also
spatial_endpoint and spatial_activation (which activation the maps are). A shard of a sharded
extraction holds its own rows only and adds shard, row_start, row_stop, run_num_rows and shard_block
(`pipeline.shards`); a merged file adds merged_from, and a virtual one (`pipeline.merge`) maps its
features and spatial maps onto the shard files instead of holding them.

Writing is crash-safe: one writer per file (`pipeline.locks`), and a new file is built under a
temporary name and renamed into place once its skeleton is complete (`pipeline.atomic`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

from . import CREATED_BY
from .atomic import created_atomically, remove_stale_temporaries
from .errors import EXIT_BAD_INPUT, PipelineError
from .locks import OutputLock, lock_output
from .shards import Shard

FORMAT_VERSION = 1
FEATURE_KINDS = ("original", "jigsaw", "rcm")
SHUFFLED_KINDS = ("jigsaw", "rcm")
_STR = h5py.string_dtype("utf-8")
DEFAULT_CACHE_DIR = Path("data/features")


def default_cache_path(split: str) -> Path:
    """Where extract-features writes a split when --out is not given."""
    return DEFAULT_CACHE_DIR / f"{split}.h5"


def open_hdf5(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """h5py.File, with its OSErrors turned into one PipelineError line that says what is wrong."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: no such file")
    if path.is_dir():
        raise PipelineError(f"{path}: is a directory, not an HDF5 file")
    try:
        return h5py.File(path, mode)
    except OSError as e:
        raise PipelineError(f"{path}: {_hdf5_problem(path, e)}") from None


def _hdf5_problem(path: Path, error: OSError) -> str:
    text = str(error)
    if isinstance(error, PermissionError) or "Permission denied" in text:
        return "permission denied"
    if "truncated file" in text:
        m = re.search(r"eof = (\d+).*stored_eof = (\d+)", text)
        detail = f": {int(m[1]):,} bytes on disk, its header says {int(m[2]):,}" if m else ""
        return f"truncated or damaged HDF5 file{detail}"
    if "file signature not found" in text:
        return "not an HDF5 file"
    if "unable to lock file" in text:
        return "open for writing in another process (HDF5 file lock); wait for it to finish"
    return f"truncated or damaged HDF5 file ({text.splitlines()[0]})"


def dataset_fingerprint(image_id: np.ndarray, label: np.ndarray, paths: Iterable[str]) -> str:
    """A short hash of the rows a cache holds, so caches of different datasets never mix."""
    h = hashlib.sha256()
    h.update(np.asarray(image_id, dtype=np.int64).tobytes())
    h.update(np.asarray(label, dtype=np.int64).tobytes())
    h.update("\n".join(paths).encode())
    return h.hexdigest()[:16]


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines the cached arrays."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def diff_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "",
              labels: tuple[str, str] = ("in the file", "asked for")) -> list[str]:
    """Names of the keys whose values differ (nested dicts compared key by key), each with both values."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_keys(va, vb, f"{prefix}{key}.", labels)
        elif va != vb:
            out.append(f"{prefix}{key} ({va!r} {labels[0]}, {vb!r} {labels[1]})")
    return out


@dataclass
class CacheLayout:
    """What the file will hold: row metadata, view settings and array shapes."""

    config: dict[str, Any]
    image_id: np.ndarray
    label: np.ndarray
    paths: list[str]
    class_names: list[str]
    feature_dim: int
    permutations: dict[str, np.ndarray]  # kind -> (N, V, G*G) int16
    spatial_shape: tuple[int, int] | None = None  # (h, w) when spatial maps are stored
    attrs: dict[str, Any] = field(default_factory=dict)  # extra root attributes (backbone_weights...)
    shard: Shard | None = None  # set for a shard file: the rows above are its rows only

    @property
    def kinds(self) -> list[str]:
        return list(self.config["views"]["kinds"])

    @property
    def num_views(self) -> int:
        return int(self.config["views"]["num_views"])


def _chunk_rows(n: int, row_bytes: int, target: int = 4 << 20) -> int:
    return int(max(1, min(n, target // max(row_bytes, 1))))


def _create(path: Path, layout: CacheLayout) -> None:
    """Write the skeleton (metadata, permutations, empty arrays, complete=False) under a temporary
    name and rename it onto `path`: `path` never holds a file that cannot be opened and resumed."""
    with created_atomically(path) as tmp:
        _write_skeleton(tmp, layout)


@dataclass(frozen=True)
class ArraySpec:
    """One computed array of a cache: its name, shape, dtype and storage (chunks, compression)."""

    name: str
    shape: tuple[int, ...]
    dtype: Any
    storage: dict[str, Any]


def array_specs(layout: CacheLayout) -> list[ArraySpec]:
    """The arrays the backbone fills (`features/*`, `spatial/*`), as every cache of `layout` stores them."""
    n, d, v = len(layout.image_id), layout.feature_dim, layout.num_views
    specs = []
    for kind in layout.kinds:
        shape = (n, d) if kind == "original" else (n, v, d)
        chunks = (_chunk_rows(n, 4 * int(np.prod(shape[1:]))),) + shape[1:]
        specs.append(ArraySpec(f"features/{kind}", shape, np.dtype(np.float32), {"chunks": chunks}))
    if layout.spatial_shape is not None:
        h, w = layout.spatial_shape
        for kind in ("original", "rcm"):
            if kind not in layout.kinds:
                continue
            shape = (n, h, w, d) if kind == "original" else (n, v, h, w, d)
            chunks = (1,) + shape[1:] if kind == "original" else (1, 1) + shape[2:]  # one map per chunk
            specs.append(ArraySpec(f"spatial/{kind}", shape, np.dtype(np.float16),
                                   {"chunks": chunks, "compression": "gzip", "compression_opts": 1, "shuffle": True}))
    return specs


def write_row_metadata(f: h5py.File, layout: CacheLayout, done: bool = False) -> None:
    """image_id, label, path, class_names, done and the permutations: everything known before extraction."""
    f.create_dataset("image_id", data=np.asarray(layout.image_id, dtype=np.int64))
    f.create_dataset("label", data=np.asarray(layout.label, dtype=np.int64))
    f.create_dataset("path", data=np.asarray(layout.paths, dtype=object), dtype=_STR)
    f.create_dataset("class_names", data=np.asarray(layout.class_names, dtype=object), dtype=_STR)
    f.create_dataset("done", data=np.full(len(layout.image_id), done, dtype=bool))
    for kind in layout.kinds:
        if kind in SHUFFLED_KINDS:
            f.create_dataset(f"permutations/{kind}", data=layout.permutations[kind].astype(np.int16))


BASE_ATTRS = ("format_version", "backbone", "image_size", "split", "seed", "views", "config", "config_hash", "complete",
              "created_by", "feature_dim", "num_rows")  # every cache's; layout.attrs and shard attributes come on top


def root_attrs(layout: CacheLayout) -> dict[str, Any]:
    """The root attributes of a new cache of `layout` (`complete` False)."""
    return {
        "format_version": FORMAT_VERSION,
        "backbone": layout.config["backbone"],
        "image_size": layout.config["image_size"],
        "split": layout.config["split"],
        "seed": layout.config["seed"],
        "views": json.dumps(layout.config["views"], sort_keys=True),
        "config": json.dumps(layout.config, sort_keys=True),
        "config_hash": config_hash(layout.config),
        "complete": False,
        "created_by": CREATED_BY,
        "feature_dim": layout.feature_dim,
        "num_rows": len(layout.image_id),
        **layout.attrs,
        **(layout.shard.attrs() if layout.shard is not None else {}),
    }


def _write_skeleton(path: Path, layout: CacheLayout) -> None:
    with h5py.File(path, "w") as f:
        write_row_metadata(f, layout)
        for spec in array_specs(layout):
            f.create_dataset(spec.name, shape=spec.shape, dtype=spec.dtype, **spec.storage)
        for key, value in root_attrs(layout).items():
            f.attrs[key] = value


class CacheWriter:
    """Writes rows in chunks with a done mask; `complete` is set last, by finish().

    It holds the file's write lock (`pipeline.locks`) from open() until finish() or close().
    """

    def __init__(self, path: Path, status: str, lock: OutputLock | None = None):
        self.path = Path(path)
        self.status = status  # "new", "resumed" or "complete"
        self._file: h5py.File | None = None
        self._lock = lock

    @classmethod
    def open(cls, path: str | os.PathLike, layout: CacheLayout, overwrite: bool = False) -> "CacheWriter":
        """Create the file, resume an incomplete one with the same config, or refuse a different one.

        Takes the file's exclusive write lock first: while another process writes `path`, this
        raises PipelineError and leaves the file alone, with or without `overwrite`.
        """
        path = Path(path)
        if path.is_dir():
            raise PipelineError(f"{path}: is a directory; give a file path for the cache, e.g. {path / 'train.h5'}")
        lock = lock_output(path)
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
                    complete = bool(f.attrs["complete"])
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
        if status == "new":
            _create(path, layout)  # atomically replaces an existing file (--overwrite)
        writer = cls(path, status)
        if status != "complete":
            writer._file = h5py.File(path, "r+")
        return writer

    def pending(self) -> np.ndarray:
        """Row indices not written yet."""
        if self._file is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(~self._file["done"][...])

    def write(self, rows: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        """Write `arrays` (keys like 'features/jigsaw', 'spatial/rcm') for contiguous `rows`, then mark them done."""
        assert self._file is not None, "cache is complete or closed"
        rows = np.asarray(rows)
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        if hi - lo != len(rows):
            raise ValueError("rows must be contiguous")
        for name, value in arrays.items():
            self._file[name][lo:hi] = value
        self._file.flush()
        done = self._file["done"]
        done[lo:hi] = True
        self._file.flush()

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
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _shard_mismatch(old: Shard | None, new: Shard | None) -> str:
    if old is None:
        return f"holds a whole split's cache, not {new.describe()}"  # type: ignore[union-attr]
    if new is None:
        return (f"holds {old.describe()} of a sharded extraction, not a whole split (merge the shards with "
                "merge-caches, or extract into another --out)")
    hint = " (another --batch-size or --views makes other blocks)" if old.block != new.block else ""
    return f"holds {old.describe()}, but this command's shard is {new.describe()}{hint}"


@dataclass
class FeatureCache:
    """A complete cache read into memory (spatial maps stay on disk until `spatial()` reads them)."""

    path: Path
    attrs: dict[str, Any]
    config: dict[str, Any]
    image_id: np.ndarray
    label: np.ndarray
    paths: list[str]
    class_names: list[str]
    features: dict[str, np.ndarray]
    permutations: dict[str, np.ndarray]
    spatial_kinds: list[str]

    def __len__(self) -> int:
        return len(self.image_id)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def feature_dim(self) -> int:
        return int(self.attrs["feature_dim"])

    @property
    def untrained(self) -> bool:
        return "untrained" in str(self.attrs.get("backbone_weights", ""))

    def spatial(self, kind: str) -> np.ndarray:
        """Read `spatial/<kind>` (float16; several GB at CUB scale, so only on request)."""
        if kind not in self.spatial_kinds:
            raise PipelineError(f"{self.path}: has no spatial/{kind}; extract it with extract-features --spatial")
        with h5py.File(self.path, "r") as f:
            return f[f"spatial/{kind}"][...]


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def file_attrs(f: h5py.File) -> dict[str, Any]:
    """A file's root attributes as plain Python values (str, int, bool...)."""
    return {k: _attr(v) for k, v in f.attrs.items()}


def read_cache(path: str | os.PathLike, kinds: Iterable[str] | None = None, role: str | None = None) -> FeatureCache:
    """Read a complete cache. Missing, foreign, damaged, incomplete or newer-format files raise PipelineError.

    `kinds` limits which `features/<kind>` arrays are loaded (all when None); asking for one the file
    lacks raises PipelineError. `role` names the option the path came from (e.g. "--test"): every
    message then starts with it, and a missing file names the extract-features command that makes it.
    """
    path = Path(path)
    try:
        return _read_cache(path, kinds, role)
    except PipelineError as e:
        if role is None:
            raise
        raise PipelineError(f"{role} {e}") from None


ROLE_SPLITS = {"--train": "train", "--test": "test"}


def _missing_cache_hint(path: Path, role: str | None = None) -> str:
    splits = [ROLE_SPLITS[role]] if role in ROLE_SPLITS else [s for s in ("train", "test", "all") if path.stem == s]
    for split in splits:
        out = "" if path == default_cache_path(split) else f" --out {path}"
        return f"run extract-features --split {split}{out} first"
    return f"run extract-features --split <train|test|all> --out {path} first"


def _read_cache(path: Path, kinds: Iterable[str] | None, role: str | None = None) -> FeatureCache:
    if not path.exists():
        raise PipelineError(f"{path}: feature cache not found; {_missing_cache_hint(path, role)}")
    with open_hdf5(path) as f:
        try:
            return _read_open_cache(path, f, kinds)
        except (OSError, RuntimeError) as e:  # the header opened but a dataset cannot be read
            raise PipelineError(f"{path}: truncated or damaged HDF5 file ({str(e).splitlines()[0]})") from None
        except KeyError as e:
            raise PipelineError(f"{path}: not a feature cache of this tool (missing {e})") from None


def _read_open_cache(path: Path, f: h5py.File, kinds: Iterable[str] | None) -> FeatureCache:
    attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if "format_version" not in attrs or "config" not in attrs:
        raise PipelineError(f"{path}: not a feature cache of this tool (no format_version/config attributes)")
    if attrs["format_version"] != FORMAT_VERSION:
        raise PipelineError(f"{path}: format_version {attrs['format_version']}, this tool reads {FORMAT_VERSION}")
    shard = Shard.from_attrs(attrs)
    if shard is not None:
        raise PipelineError(f"{path}: is {shard.describe()} of a sharded extraction, not a whole split; "
                            "merge the shards first: merge-caches OUT.h5 SHARD.h5 ...")
    if not attrs.get("complete"):
        done = int(f["done"][...].sum())
        raise PipelineError(
            f"{path}: incomplete cache ({done}/{attrs['num_rows']} rows written); rerun extract-features to resume"
        )
    config = json.loads(attrs["config"])
    check_virtual_sources(path, f)
    wanted = list(f["features"]) if kinds is None else list(kinds)
    missing = [k for k in wanted if k not in f["features"]]
    if missing:
        raise PipelineError(f"{path}: has no features/{missing[0]} (it holds {', '.join(sorted(f['features']))})")
    features = {k: f[f"features/{k}"][...] for k in wanted}
    perms = {k: f[f"permutations/{k}"][...] for k in f["permutations"]} if "permutations" in f else {}
    spatial = sorted(f["spatial"]) if "spatial" in f else []
    return FeatureCache(
        path=path,
        attrs=attrs,
        config=config,
        image_id=f["image_id"][...],
        label=f["label"][...],
        paths=[s.decode() if isinstance(s, bytes) else s for s in f["path"][...]],
        class_names=[s.decode() if isinstance(s, bytes) else s for s in f["class_names"][...]],
        features=features,
        permutations=perms,
        spatial_kinds=spatial,
    )


def virtual_sources(path: Path, f: h5py.File) -> list[Path]:
    """The files a virtual cache (merge-caches --virtual) reads its arrays from, resolved as HDF5 resolves
    them: a relative name is relative to the virtual file's directory. Empty for an ordinary cache."""
    names: set[str] = set()

    def visit(_: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.is_virtual:
            names.update(source.file_name for source in obj.virtual_sources())

    f.visititems(visit)
    return sorted(Path(name) if os.path.isabs(name) else path.parent / name for name in names if name != ".")


def check_virtual_sources(path: Path, f: h5py.File) -> None:
    """A virtual cache's shard files must all be there, complete and of its configuration.

    HDF5 itself reads a missing source as zeros without a word; this refuses instead.
    """
    expected = f.attrs["config_hash"]
    for source in virtual_sources(path, f):
        problem = None
        if not source.is_file():
            problem = "which is missing"
        else:
            try:
                with h5py.File(source, "r") as s:
                    if not s.attrs.get("complete"):
                        problem = "which is incomplete"
                    elif s.attrs.get("config_hash") != expected:
                        problem = "which now holds another configuration"
            except OSError:
                problem = "which cannot be read"
        if problem:
            raise PipelineError(f"{path}: a virtual cache over {source}, {problem}; the shards of a virtual merge must "
                                "stay where they were (or merge them again with merge-caches, without --virtual)")


def _first_difference(a: list[str], b: list[str]) -> str:
    """'200 vs 199 classes; first difference at index 17: '018.X' vs '019.Y''."""
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    name = lambda names: repr(names[i]) if i < len(names) else "(none)"  # noqa: E731
    return f"{len(a)} vs {len(b)} classes; first difference at index {i}: {name(a)} vs {name(b)}"


_CONFIG_DEFAULTS = {"precision": "fp32"}  # caches written before extract-features --precision ran in float32


def check_compatible(train: FeatureCache, test: FeatureCache) -> None:
    """Train and test caches must come from the same backbone, input size, views, precision and classes.

    Whether spatial maps were stored is not compared: it leaves the pooled features unchanged, and a
    method that needs the maps checks for them itself.
    """
    keys = ("format_version", "backbone", "image_size", "seed", "views", "preprocessing", "precision")
    a = {k: train.config.get(k, _CONFIG_DEFAULTS.get(k)) for k in keys}
    b = {k: test.config.get(k, _CONFIG_DEFAULTS.get(k)) for k in keys}
    differ = [f"{k} ({a[k]!r} vs {b[k]!r})" for k in keys if a[k] != b[k]]
    if train.class_names != test.class_names:
        differ.append(f"class_names ({_first_difference(train.class_names, test.class_names)})")
    if train.feature_dim != test.feature_dim:
        differ.append(f"feature_dim ({train.feature_dim} vs {test.feature_dim})")
    if differ:
        raise PipelineError(f"{train.path} and {test.path} do not match: {'; '.join(differ)}")
    overlap = np.intersect1d(train.image_id, test.image_id)
    if len(overlap):
        raise PipelineError(f"{train.path} and {test.path} share {len(overlap)} image ids (e.g. {overlap[0]}); "
                            "the test cache must not overlap the training cache")


def describe(path: str | os.PathLike) -> str:
    """A few lines summarising a cache for people; PipelineError for a file that is not a readable cache."""
    path = Path(path)
    with open_hdf5(path) as f:
        try:
            return _describe_open(path, f)
        except (OSError, RuntimeError) as e:
            raise PipelineError(f"{path}: truncated or damaged HDF5 file ({str(e).splitlines()[0]})") from None


def _describe_open(path: Path, f: h5py.File) -> str:
    attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if "format_version" not in attrs or "config" not in attrs:
        raise PipelineError(f"{path}: an HDF5 file, but not a feature cache of this tool (no format_version/config attributes)")
    state = "complete" if attrs.get("complete") else f"INCOMPLETE: {int(f['done'][...].sum())}/{attrs['num_rows']} rows written"
    lines = [f"{path}  ({path.stat().st_size / 2**20:.1f} MiB, {state})"]
    lines.append(f"  split={attrs['split']} rows={attrs['num_rows']} classes={len(f['class_names'])} "
                 f"backbone={attrs['backbone']} weights={attrs.get('backbone_weights', '?')} "
                 f"image_size={attrs['image_size']} precision={json.loads(attrs['config']).get('precision', 'fp32')} "
                 f"config_hash={attrs['config_hash']}")
    if "spatial_activation" in attrs:
        lines.append(f"  spatial maps: {attrs['spatial_activation']}")
    shard = Shard.from_attrs(attrs)
    if shard is not None:
        lines.append(f"  {shard.describe()}: merge the shards with merge-caches before training")
    sources = virtual_sources(path, f)
    if sources:
        lines.append(f"  virtual: its arrays are read from {len(sources)} shard files, which must stay in place: "
                     + ", ".join(f"{s}{'' if s.is_file() else ' (MISSING)'}" for s in sources))

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and "/" in name:
            lines.append(f"  {name:22s} {str(obj.shape):24s} {obj.dtype}")

    f.visititems(visit)
    return "\n".join(lines)


USAGE = "usage: python -m pipeline.cache CACHE.h5 [CACHE.h5 ...]"


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.cache FILE...`: a summary of each cache; one `error:` line per bad file, exit 2."""
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(f"{USAGE}\n\nPrint a summary of each feature cache written by extract-features "
              "(rows, classes, backbone, completeness, arrays).")
        return 0
    files = [a for a in args if a != "--"]
    unknown = [a for a in files if a.startswith("-")]
    if not files or unknown:
        problem = f"no such option: {unknown[0]}" if unknown else "give at least one cache file"
        print(f"{USAGE}\nerror: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rc = 0
    try:
        for p in files:
            try:
                print(describe(p), flush=True)
            except PipelineError as e:
                print(f"error: {e}", file=sys.stderr)
                rc = EXIT_BAD_INPUT
    except BrokenPipeError:  # `python -m pipeline.cache a.h5 | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
