"""Reading a feature cache (schema: `pipeline.schema`): complete, of this format, its virtual sources present.

Every problem is one PipelineError line naming the file; the messages speak of caches, rows and
splits. Which option a path came from, and which command makes it, is the caller's to add.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import h5py
import numpy as np

from .errors import PipelineError
from .schema import FORMAT_VERSION, Shard


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
    official_split: list[str] | None = None  # per row train / val / test, for datasets with an official val split
    offsets: dict[str, np.ndarray] | None = None  # "patches" -> (N, V, P*P, 2) crop corners, when the cache has them

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

    def official_validation_rows(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(other rows, validation rows) by the dataset's official validation split (e.g. FGVC-Aircraft's
        val inside a trainval cache), or None when the cache has no rows of one (CUB, or a train-only cache)."""
        name = (self.config.get("source") or {}).get("official_validation")
        if not name or self.official_split is None:
            return None
        is_val = np.asarray([s == name for s in self.official_split], dtype=bool)
        if not is_val.any() or is_val.all():
            return None
        return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)

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


def read_cache(path: str | os.PathLike, kinds: Iterable[str] | None = None) -> FeatureCache:
    """Read a complete cache. Missing, foreign, damaged, incomplete or newer-format files raise PipelineError.

    `kinds` limits which `features/<kind>` arrays are loaded (all when None); asking for one the file
    lacks raises PipelineError.
    """
    return _read_cache(Path(path), kinds)


MISSING_CACHE = "feature cache not found"


def _read_cache(path: Path, kinds: Iterable[str] | None) -> FeatureCache:
    if not path.exists():
        raise PipelineError(f"{path}: {MISSING_CACHE}")
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
    done_mask = f["done"][...] if "done" in f else None
    if not attrs.get("complete"):
        done = int(done_mask.sum()) if done_mask is not None else 0
        raise PipelineError(
            f"{path}: incomplete cache ({done}/{attrs['num_rows']} rows written); rerun extract-features to resume"
        )
    if done_mask is not None and not done_mask.all():  # the attribute alone is not trusted
        missing = np.flatnonzero(~done_mask)
        raise PipelineError(f"{path}: marked complete, but {len(missing)} of its {len(done_mask)} rows were never "
                            f"written (first: row {missing[0]}, image_id {f['image_id'][missing[0]]}); rerun the extract-features "
                            "command that wrote it: it writes those rows")
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
        official_split=_strings(f["official_split"][...]) if "official_split" in f else None,
        offsets={k: f[f"offsets/{k}"][...] for k in f["offsets"]} if "offsets" in f else {},
    )


def _strings(values) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else s for s in values]


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




def check_same_source(a: FeatureCache, b: FeatureCache, keys: Sequence[str],
                      defaults: dict[str, Any] | None = None) -> None:
    """Two caches of one backbone and dataset: equal config `keys` (absent ones read as `defaults`), the
    same class names and the same feature dimension. PipelineError names the keys that differ."""
    defaults = defaults or {}
    va = {k: a.config.get(k, defaults.get(k)) for k in keys}
    vb = {k: b.config.get(k, defaults.get(k)) for k in keys}
    differ = [f"{k} ({va[k]!r} vs {vb[k]!r})" for k in keys if va[k] != vb[k]]
    if a.class_names != b.class_names:
        differ.append(f"class_names ({_first_difference(a.class_names, b.class_names)})")
    if a.feature_dim != b.feature_dim:
        differ.append(f"feature_dim ({a.feature_dim} vs {b.feature_dim})")
    if differ:
        raise PipelineError(f"{a.path} and {b.path} do not match: {'; '.join(differ)}")


def shared_image_ids(a: FeatureCache, b: FeatureCache) -> np.ndarray:
    """The image ids both caches hold (sorted); empty for caches of disjoint splits."""
    return np.intersect1d(a.image_id, b.image_id)


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
