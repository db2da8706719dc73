"""`merge-caches OUT SHARD...`: join the shard files of one sharded extraction into one cache.

The shards (`extract-features --shard I/N`, see `extract.sharding.plan`) must share one configuration and
one block size, be complete, and cover every row of the split exactly once; anything else is refused
with one line naming the shard (or the rows no shard holds). OUT is then written as an ordinary,
self-contained cache — the arrays copied (spatial maps chunk by chunk, their compressed bytes as they
are), the same chunking and compression as an unsharded file, built under a temporary name and
renamed into place with `complete` set last — so its arrays and `config_hash` equal those of an
unsharded run of the same command. With `virtual=True` OUT instead maps `features/*` and `spatial/*`
onto the shard files (HDF5 virtual datasets): no copy, but the shards must stay where they are.

Imports neither TensorFlow nor PyTorch.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import click
import h5py
import numpy as np

from pipeline.diff import diff_keys
from pipeline.errors import PipelineError, run_cli
from pipeline.files import created_atomically, lock_output, remove_stale_temporaries
from pipeline.reader import file_attrs, open_hdf5, virtual_sources
from pipeline.schema import (BASE_ATTRS, SHARD_ATTRS, SHUFFLED_KINDS, CacheLayout, Shard, array_specs,
                             dataset_fingerprint, root_attrs)
from pipeline.writer import write_row_metadata

from .plan import plan_shards, sibling_shard_path

COPY_BYTES = 64 << 20  # rows copied per read/write when chunks cannot be copied as they are


@dataclass
class ShardFile:
    """What merging needs to know of one shard file (read before anything is written)."""

    path: Path
    shard: Shard
    attrs: dict[str, Any]
    config: dict[str, Any]


@dataclass
class MergeResult:
    out: Path
    status: str  # "new" or "complete" (nothing to do)
    rows: int
    shards: int
    seconds: float
    virtual: bool


def read_shard(path: str | os.PathLike) -> ShardFile:
    """One shard's record; PipelineError (one line naming it) if it is not a complete shard of this tool."""
    path = Path(path)
    with open_hdf5(path) as f:
        attrs = file_attrs(f)
        if "format_version" not in attrs or "config" not in attrs:
            raise PipelineError(f"{path}: not a feature cache of this tool (no format_version/config attributes)")
        try:
            shard = Shard.from_attrs(attrs)
            config = json.loads(attrs["config"])
        except (KeyError, ValueError) as e:
            raise PipelineError(f"{path}: damaged shard attributes ({e})") from None
        if shard is None:
            raise PipelineError(f"{path}: a whole cache, not a shard; merge-caches joins the files written by "
                                "extract-features --shard I/N")
        if not attrs.get("complete"):
            done = int(f["done"][...].sum()) if "done" in f else 0
            raise PipelineError(f"{path}: {shard.describe()} is incomplete ({done} of {shard.num_rows} rows written); "
                                f"rerun its extraction (extract-features ... --shard {shard.spec}) to resume it")
        if attrs.get("num_rows") != shard.num_rows or len(f["image_id"]) != shard.num_rows:
            raise PipelineError(f"{path}: holds {len(f['image_id'])} rows, but its shard attributes say "
                                f"{shard.rows_text()}")
    return ShardFile(path, shard, attrs, config)


def check_shards(paths: Sequence[str | os.PathLike]) -> list[ShardFile]:
    """Read and check the shards of one run; return them in row order. PipelineError names the problem."""
    if not paths:
        raise PipelineError("give the shard files to merge")
    seen: dict[Path, Path] = {}
    files = []
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise PipelineError(f"{p}: given twice")
        seen[key] = Path(p)
        files.append(read_shard(p))
    ref = files[0]
    for other in files[1:]:
        if other.attrs["config_hash"] != ref.attrs["config_hash"]:
            differ = diff_keys(ref.config, other.config, labels=(f"in {ref.path.name}", f"in {other.path.name}"))
            raise PipelineError(f"{other.path}: {other.shard.describe()} was extracted with another configuration than "
                                f"{ref.path}: {'; '.join(differ) or 'config_hash differs'}")
        if other.shard.block != ref.shard.block:
            raise PipelineError(f"{other.path}: {other.shard.describe()} is in blocks of {other.shard.block} images, "
                                f"{ref.path} in blocks of {ref.shard.block} (another --batch-size): its rows were not "
                                "batched as one run batches them")
        if other.shard.run_num_rows != ref.shard.run_num_rows:
            raise PipelineError(f"{other.path}: {other.shard.describe()} is of a run of {other.shard.run_num_rows} rows, "
                                f"{ref.path} of {ref.shard.run_num_rows}")
    files.sort(key=lambda s: (s.shard.row_start, s.shard.row_stop))
    _check_coverage(files)
    return files


def _check_coverage(files: list[ShardFile]) -> None:
    """Every row of the run in exactly one shard: name the first overlap or the first rows no shard holds."""
    n = files[0].shard.run_num_rows
    covered, previous = 0, None
    for s in files:
        if s.shard.row_start < covered:
            a = previous
            raise PipelineError(f"{s.path}: {s.shard.describe()} overlaps {a.path} ({a.shard.describe()}): "
                                f"rows {s.shard.row_start}..{min(covered, s.shard.row_stop) - 1} are in both")
        if s.shard.row_start > covered:
            raise PipelineError(_missing(files, covered, s.shard.row_start))
        covered, previous = s.shard.row_stop, s
    if covered < n:
        raise PipelineError(_missing(files, covered, n))


def _missing(files: list[ShardFile], start: int, stop: int) -> str:
    """'missing shard 1/2 (rows 6..11 of 12): none of the files given holds these rows; ...'."""
    ref = files[0].shard
    counts = {s.shard.count for s in files}
    if len(counts) == 1:
        planned = [p for p in plan_shards(ref.count, ref.run_num_rows, ref.block)
                   if p.row_start >= start and p.row_stop <= stop]
        if planned and planned[0].row_start == start and planned[-1].row_stop == stop:
            names = ", ".join(f"{p.spec}" for p in planned)
            where = sibling_shard_path(files[0].path, planned[0].index, ref.count)
            hint = f" (expected e.g. at {where}{'' if where.exists() else ', not there'})" if where else ""
            return (f"missing shard{'s' if len(planned) > 1 else ''} {names} (rows {start}..{stop - 1} of "
                    f"{ref.run_num_rows}){hint}: none of the files given holds these rows; extract "
                    f"{'them' if len(planned) > 1 else 'it'} with extract-features ... --shard {planned[0].spec}")
    return (f"rows {start}..{stop - 1} of {ref.run_num_rows} are in none of the shard files given; "
            "extract them with extract-features ... --shard I/N (the same N and options as the others)")


def merged_layout(files: list[ShardFile], handles: list[h5py.File]) -> CacheLayout:
    """The layout of the whole run: the shards' row metadata concatenated, their shared config and attributes."""
    ref = files[0]
    config = ref.config
    image_id = np.concatenate([h["image_id"][...] for h in handles])
    label = np.concatenate([h["label"][...] for h in handles])
    paths = [p.decode() if isinstance(p, bytes) else p for h in handles for p in h["path"][...]]
    if dataset_fingerprint(image_id, label, paths) != config.get("dataset"):
        raise PipelineError(f"{', '.join(str(s.path) for s in files)}: their rows together are not the rows their "
                            "config's dataset fingerprint names (a shard was altered?)")
    class_names = [c.decode() if isinstance(c, bytes) else c for c in handles[0]["class_names"][...]]
    for s, h in zip(files[1:], handles[1:]):
        if [c.decode() if isinstance(c, bytes) else c for c in h["class_names"][...]] != class_names:
            raise PipelineError(f"{s.path}: class_names differ from {ref.path}'s")
    perms = {k: np.concatenate([h[f"permutations/{k}"][...] for h in handles])
             for k in SHUFFLED_KINDS if f"permutations/{k}" in handles[0]}
    spatial_shape = None
    if "spatial" in handles[0]:
        first = handles[0]["spatial"]
        spatial_shape = tuple(first["original"].shape[1:3]) if "original" in first else tuple(first["rcm"].shape[2:4])
    extra = {k: v for k, v in ref.attrs.items() if k not in BASE_ATTRS and k not in SHARD_ATTRS and k != "merged_from"}
    official = None
    if "official_split" in handles[0]:
        official = [x.decode() if isinstance(x, bytes) else x for h in handles for x in h["official_split"][...]]
    offsets = {k: np.concatenate([h[f"offsets/{k}"][...] for h in handles]) for k in handles[0].get("offsets", {})}
    layout = CacheLayout(config, image_id, label, paths, class_names, int(ref.attrs["feature_dim"]), perms,
                         spatial_shape, extra, official_split=official, offsets=offsets)
    for spec in array_specs(layout):  # every shard holds every array, with its own rows
        for s, h in zip(files, handles):
            want = (s.shard.num_rows,) + spec.shape[1:]
            if spec.name not in h or h[spec.name].shape != want or h[spec.name].dtype != spec.dtype:
                found = f"{h[spec.name].shape} {h[spec.name].dtype}" if spec.name in h else "nothing"
                raise PipelineError(f"{s.path}: expected {spec.name} of shape {want} {spec.dtype}, found {found}")
    return layout


def _same_storage(src: h5py.Dataset, dst: h5py.Dataset, offset: int) -> bool:
    """Whether src's chunks can be copied as they are (compressed bytes and all) to rows offset.. of dst."""
    return (src.chunks is not None and src.chunks == dst.chunks and offset % dst.chunks[0] == 0
            and src.dtype == dst.dtype and src.compression == dst.compression
            and src.compression_opts == dst.compression_opts and src.shuffle == dst.shuffle
            and src.fletcher32 == dst.fletcher32 and src.scaleoffset == dst.scaleoffset)


def copy_rows(src: h5py.Dataset, dst: h5py.Dataset, offset: int) -> None:
    """dst[offset:offset + len(src)] = src, without holding more than a few chunks (or COPY_BYTES) in memory.

    With identical chunking and filters (spatial maps: one map per chunk, gzip) each stored chunk is
    copied as its compressed bytes, so nothing is decompressed or compressed again and the merged
    chunks are byte for byte those an unsharded run writes. Otherwise rows are copied in slices.
    """
    if _same_storage(src, dst, offset):
        for i in range(src.id.get_num_chunks()):
            where = src.id.get_chunk_info(i).chunk_offset
            mask, data = src.id.read_direct_chunk(where)
            dst.id.write_direct_chunk((where[0] + offset,) + tuple(where[1:]), data, mask)
        return
    n = len(src)
    row_bytes = max(1, src.dtype.itemsize * int(np.prod(src.shape[1:])))
    step = max(1, COPY_BYTES // row_bytes)
    if dst.chunks:
        step = max(dst.chunks[0], step // dst.chunks[0] * dst.chunks[0])
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        dst[offset + lo: offset + hi] = src[lo:hi]


def _write_copy(tmp: Path, files: list[ShardFile], handles: list[h5py.File], layout: CacheLayout,
                attrs: dict[str, Any]) -> None:
    with h5py.File(tmp, "w") as f:
        write_row_metadata(f, layout)
        for spec in array_specs(layout):
            dst = f.create_dataset(spec.name, shape=spec.shape, dtype=spec.dtype, **spec.storage)
            for s, h in zip(files, handles):
                copy_rows(h[spec.name], dst, s.shard.row_start)
        f["done"][...] = True
        for key, value in attrs.items():
            f.attrs[key] = value
        f.flush()
        f.attrs["complete"] = True  # last


def _write_virtual(tmp: Path, out: Path, files: list[ShardFile], layout: CacheLayout, attrs: dict[str, Any]) -> None:
    base = out.resolve().parent
    with h5py.File(tmp, "w") as f:
        write_row_metadata(f, layout, done=True)
        for spec in array_specs(layout):
            virtual = h5py.VirtualLayout(shape=spec.shape, dtype=spec.dtype)
            for s in files:
                # relative to OUT's directory, as HDF5 resolves it: OUT and its shards may move together
                source = os.path.relpath(s.path.resolve(), base)
                virtual[s.shard.row_start: s.shard.row_stop] = h5py.VirtualSource(
                    source, spec.name, shape=(s.shard.num_rows,) + spec.shape[1:])
            f.create_virtual_dataset(spec.name, virtual, fillvalue=0)
        for key, value in attrs.items():
            f.attrs[key] = value
        f.flush()
        f.attrs["complete"] = True  # last


def _existing_output(out: Path, files: list[ShardFile], virtual: bool, overwrite: bool) -> bool:
    """True when OUT already is this merge (nothing to do); False to write it; PipelineError to refuse."""
    if not out.exists():
        return False
    try:
        with open_hdf5(out) as f:
            attrs = file_attrs(f)
            config = json.loads(attrs["config"])
            shard = Shard.from_attrs(attrs)
            sources = {p.resolve() for p in virtual_sources(out, f)}
            done = int(f["done"][...].sum()) if "done" in f else 0
    except (PipelineError, KeyError, ValueError, OSError) as e:
        if overwrite:
            return False
        detail = str(e) if isinstance(e, PipelineError) else f"{out}: exists and is not a feature cache of this tool"
        raise PipelineError(f"{detail}; use --overwrite to replace it") from None
    ref = files[0]
    same = attrs.get("config_hash") == ref.attrs["config_hash"] and shard is None
    if same and attrs.get("complete"):
        if virtual:  # nothing to do only if it maps exactly these shard files
            return sources == {s.path.resolve() for s in files}
        return not sources  # a virtual file where a copy is asked for: write the copy
    if overwrite:
        return False
    if shard is not None:
        raise PipelineError(f"{out}: is {shard.describe()} itself; write the merged cache to another file")
    if same:
        raise PipelineError(f"{out}: an incomplete cache of this configuration ({done} of {attrs.get('num_rows')} rows "
                            "written, e.g. an interrupted unsharded run); resume it with extract-features, or "
                            "use --overwrite to replace it with the merge")
    differ = diff_keys(config, ref.config, labels=(f"in {out.name}", "in the shards"))
    raise PipelineError(f"{out}: exists with another configuration: {'; '.join(differ)}; use --overwrite to "
                        "replace it, or merge into another file")


def merge_shards(out: str | os.PathLike, shard_paths: Iterable[str | os.PathLike], virtual: bool = False,
                 overwrite: bool = False) -> MergeResult:
    """Check the shards and write OUT (see the module docstring). Holds OUT's write lock, and each
    shard's, for the whole merge, so no extraction changes a shard while it is read."""
    out = Path(out)
    paths = [Path(p) for p in shard_paths]
    if out.is_dir():
        raise PipelineError(f"{out}: is a directory; give a file path for the merged cache, e.g. {out / 'train.h5'}")
    if any(p.resolve() == out.resolve() for p in paths):
        raise PipelineError(f"{out}: is one of the shards given; write the merged cache to another file")
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(lock_output(out, what="merge"))
        for p in paths:
            if p.is_file() and os.access(p.parent, os.W_OK):  # a read-only directory has no writer to fear
                stack.enter_context(lock_output(p, what="merge"))
        remove_stale_temporaries(out)  # left by a merge killed while writing
        files = check_shards(paths)
        rows = files[0].shard.run_num_rows
        if _existing_output(out, files, virtual, overwrite):
            return MergeResult(out, "complete", rows, len(files), 0.0, virtual)
        handles = [stack.enter_context(h5py.File(s.path, "r")) for s in files]
        layout = merged_layout(files, handles)
        base = out.resolve().parent
        attrs = {**root_attrs(layout),
                 "merged_from": json.dumps([os.path.relpath(s.path.resolve(), base) for s in files])}
        with created_atomically(out) as tmp:
            if virtual:
                _write_virtual(tmp, out, files, layout, attrs)
            else:
                _write_copy(tmp, files, handles, layout, attrs)
    return MergeResult(out, "new", rows, len(files), time.perf_counter() - start, virtual)


def summary(result: MergeResult) -> str:
    if result.status == "complete":
        return (f"{result.out}: already the merge of these {result.shards} shards ({result.rows} rows, same "
                "configuration); nothing to do")
    size = result.out.stat().st_size / 2**20
    kind = ("virtual: its features and spatial maps are read from the shard files, which must stay where they are"
            if result.virtual else "a self-contained copy")
    return (f"wrote {result.out}: {result.rows} rows from {result.shards} shards, {size:.1f} MiB, "
            f"{result.seconds:.1f} s ({kind})")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out", type=click.Path(dir_okay=True))
@click.argument("shards", nargs=-1, required=True, type=click.Path())
@click.option("--virtual", is_flag=True,
              help="Write OUT as HDF5 virtual datasets over the shards instead of a copy (no copy, no extra disk; "
                   "the shard files must then stay where they are).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT of another configuration.")
def merge_caches(out: str, shards: tuple[str, ...], virtual: bool, overwrite: bool) -> None:
    """Merge the shard files of one `extract-features --shard I/N` run into the cache OUT.

    The shards must share one configuration, all be complete and cover every row exactly once. OUT is
    then an ordinary cache, equal array for array to an unsharded run's.
    """
    print(summary(merge_shards(out, shards, virtual=virtual, overwrite=overwrite)))


def main() -> None:
    run_cli(merge_caches)


if __name__ == "__main__":
    main()
