"""Batched extraction of one split into the HDF5 cache, resumable block by block."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from pipeline.datasets import Dataset, cache_official_split
from pipeline.errors import PipelineError
from pipeline.figures import image_title, save_views_figure
from pipeline.schema import PATCH_DTYPE, SHUFFLED_KINDS, CacheLayout, Shard
from pipeline.views import make_patch_views, make_permutations
from pipeline.writer import CacheWriter

from .backbone import Backbone
from .config import extraction_config
from .inputs import ViewSpec, load_image, make_dataset
from .precision import apply_precision
from .sharding.plan import images_per_block, plan_shard
from .writer import BackgroundWriter


@dataclass
class Result:
    out: Path
    status: str  # "new", "resumed" or "complete" (nothing to do)
    rows: int  # rows computed in this run
    inputs: int  # backbone inputs computed in this run
    seconds: float


def _find_bad_image(files: list[str], rows: np.ndarray, image_ids: np.ndarray, image_size: int) -> str:
    for r in rows:
        try:
            load_image(tf.constant(files[r]), image_size)
        except tf.errors.OpError as e:
            return f"{files[r]}: cannot decode image (image_id {image_ids[r]}): {_op_error_text(e)}"
    return f"decoding failed in rows {rows[0]}..{rows[-1]} but each image decodes alone"


def _op_error_text(error: tf.errors.OpError) -> str:
    """TensorFlow's message without its internals: '{{function_node ...}}', '[Op:...]', 'name: '."""
    text = re.sub(r"\{\{[^}]*\}\}", "", error.message.splitlines()[0])
    text = re.sub(r"\[Op:\w+\].*$", "", text)
    text = text.replace("jpeg::Uncompress failed. ", "").strip().rstrip(".")
    return text or type(error).__name__


@dataclass
class _Plan:
    """What one extraction run computes: the file's layout, its rows and the fixed blocks they batch in."""

    layout: CacheLayout
    lo: int  # first row of the split in this file
    hi: int
    block: int  # whole images per forward pass


def _prepare(data: Dataset, backbone: Backbone, spec: ViewSpec, image_size: int, seed: int, spatial: bool,
             batch_size: int, shard: tuple[int, int] | None) -> _Plan:
    """The cache layout of this run (the whole split, or shard I of N) with its permutations."""
    config = extraction_config(data, spec, backbone.handle, image_size, seed, spatial, backbone.precision)
    block = images_per_block(batch_size, spec.per_image)
    part: Shard | None = plan_shard(*shard, len(data), block) if shard is not None else None
    lo, hi = (part.row_start, part.row_stop) if part is not None else (0, len(data))
    image_id = data.image_id[lo:hi]
    perms = {k: make_permutations(k, seed, image_id, spec.num_views,
                                  spec.jigsaw_grid if k == "jigsaw" else spec.rcm_grid, spec.rcm_k)
             for k in SHUFFLED_KINDS if k in spec.kinds and k != "patches"}
    offsets = {}
    if "patches" in spec.kinds:  # the order and the crop corners of each view, seeded per image and view
        perms["patches"], offsets["patches"] = make_patch_views(seed, image_id, spec.num_views, image_size,
                                                                spec.patch_grid, spec.patch_size, spec.patch_jitter)
    attrs = {"backbone_weights": backbone.weights, "backbone_endpoint": backbone.endpoint}
    if spatial and backbone.spatial_activation:
        attrs["spatial_activation"] = backbone.spatial_activation
    official = cache_official_split(data)
    layout = CacheLayout(config, image_id, data.label[lo:hi], data.path[lo:hi], data.class_names, backbone.feature_dim,
                         perms, backbone.spatial_shape if spatial else None, attrs, shard=part,
                         official_split=official[lo:hi] if official is not None else None, offsets=offsets)
    return _Plan(layout, lo, hi, block)


def _pending_blocks(writer: CacheWriter, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """(blocks, rows) still to compute. Rows are the file's own (0-based); a shard starts on a block
    boundary of the split, so the file's blocks are the split's blocks."""
    n, block = plan.hi - plan.lo, plan.block
    pending = writer.pending()
    todo = np.unique(pending // block)  # fixed blocks: a resumed run batches rows exactly as a fresh one
    rows = np.concatenate([np.arange(b * block, min((b + 1) * block, n)) for b in todo]) if len(todo) else pending
    return todo, rows


def _split_outputs(pooled: np.ndarray, maps: np.ndarray | None, spec: ViewSpec) -> dict[str, np.ndarray]:
    """One batch's backbone outputs (b, inputs per image, ...) -> the cache's arrays, by kind."""
    arrays, col, v = {}, 0, spec.num_views
    if "original" in spec.kinds:
        arrays["features/original"] = pooled[:, 0]
        if maps is not None:
            arrays["spatial/original"] = maps[:, 0]
        col = 1
    for kind in SHUFFLED_KINDS:
        if kind in spec.kinds and kind != "patches":
            arrays[f"features/{kind}"] = pooled[:, col: col + v]
            if maps is not None and kind == "rcm":
                arrays["spatial/rcm"] = maps[:, col: col + v]
            col += v
    return arrays


def _whole_outputs(backbone: Backbone, stacks: tf.Tensor, spec: ViewSpec, image_size: int,
                   spatial: bool) -> dict[str, np.ndarray]:
    """The backbone on one batch's full-size inputs (b, K, S, S, 3) -> the cache's arrays of those kinds."""
    b, k = int(stacks.shape[0]), spec.whole_per_image
    if not k:
        return {}
    pooled, maps = backbone.run(tf.reshape(stacks, [-1, image_size, image_size, 3]))
    pooled = pooled.numpy().reshape(b, k, -1)
    maps = maps.numpy().reshape(b, k, *maps.shape[1:]) if spatial else None
    return _split_outputs(pooled, maps, spec)


def embed_patches(backbone: Backbone, patches: tf.Tensor, num_views: int) -> np.ndarray:
    """(b, V * G*G, P, P, 3) patch crops -> (b, V, G*G, D) pooled features, each patch at its own size."""
    b, count, size = int(patches.shape[0]), int(patches.shape[1]), int(patches.shape[2])
    pooled, _ = backbone.run(tf.reshape(patches, [-1, size, size, 3]))
    return pooled.numpy().reshape(b, num_views, count // num_views, -1)


def _run_batches(data: Dataset, backbone: Backbone, plan: _Plan, todo: np.ndarray, rows: np.ndarray, spec: ViewSpec,
                 image_size: int, spatial: bool, submit: Callable, bar: tqdm,
                 after_batch: Callable[[int], None] | None) -> int:
    """Compute every pending block through the backbone and hand its arrays to `submit`; rows computed."""
    files = [str(data.image_file(i)) for i in range(plan.lo, plan.hi)]
    ds = make_dataset(files, rows, plan.layout.permutations, spec, image_size, plan.block,
                      plan.layout.offsets.get("patches"))
    iterator, done_rows = iter(ds), 0
    for i in range(len(todo)):
        try:
            batch_rows, stacks, patches = next(iterator)
        except tf.errors.OpError:
            expected = rows[i * plan.block: (i + 1) * plan.block]
            raise PipelineError(_find_bad_image(files, expected, plan.layout.image_id, image_size)) from None
        arrays = _whole_outputs(backbone, stacks, spec, image_size, spatial)
        if "patches" in spec.kinds:
            arrays["features/patches"] = embed_patches(backbone, patches, spec.num_views)
        b = int(stacks.shape[0])
        submit(batch_rows.numpy(), arrays)  # written while the next batch computes
        done_rows += b
        bar.update(b)
        if after_batch is not None:
            after_batch(i)
    return done_rows


def extract_split(data: Dataset, backbone: Backbone, out: Path, spec: ViewSpec, image_size: int, seed: int,
                  spatial: bool, batch_size: int, overwrite: bool = False, progress: bool = True,
                  after_batch: Callable[[int], None] | None = None, shard: tuple[int, int] | None = None) -> Result:
    """Write (or resume) the cache for `data` at `out`. `after_batch(i)` is a hook for tests.

    Batch i is written by a background thread while the backbone computes batch i + 1.

    With `shard=(I, N)`, `out` receives only shard I of N (`extract.sharding.plan`): a contiguous run of
    whole blocks, each batched exactly as an unsharded run batches it, under the whole run's config.
    """
    plan = _prepare(data, backbone, spec, image_size, seed, spatial, batch_size, shard)
    writer = CacheWriter.open(out, plan.layout, overwrite=overwrite)
    if writer.status == "complete":
        return Result(Path(out), "complete", 0, 0, 0.0)
    todo, rows = _pending_blocks(writer, plan)
    if not len(rows):  # every row written, the completion mark not (a stop between the two): mark it, compute nothing
        try:
            writer.finish()
        finally:
            writer.close()
        return Result(Path(out), writer.status, 0, 0, 0.0)
    # TensorFlow's mixed-precision rewrite is a process-wide setting applied when a function is traced: set it to
    # this backbone's precision, so an earlier extraction in the same process at another precision cannot leak in
    apply_precision(backbone.precision)
    start = time.perf_counter()
    part = plan.layout.shard
    desc = f"extract {data.split}" + (f" shard {part.spec}" if part is not None else "")
    bar = tqdm(total=len(rows), unit="img", desc=desc, smoothing=0.1,
               disable=None if progress else True)  # None: only on a terminal
    background = BackgroundWriter(lambda r, a: writer.write(r, _storage_dtypes(a)), out)
    try:
        done_rows = _run_batches(data, backbone, plan, todo, rows, spec, image_size, spatial, background.submit, bar,
                                 after_batch)
        background.close()  # every batch written, or the writer's error raised here
        writer.finish()
    finally:
        background.close(check=False)  # an interrupted run still writes the batches already computed
        bar.close()
        writer.close()
    return Result(Path(out), writer.status, done_rows, done_rows * spec.per_image, time.perf_counter() - start)


def _storage_dtypes(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Features float32 whatever the precision the backbone ran in, patch features and spatial maps float16
    (on the writer thread)."""
    def dtype(name: str):
        return np.float16 if name.startswith("spatial/") else PATCH_DTYPE if name == "features/patches" else np.float32

    return {name: a.astype(dtype(name), copy=False) for name, a in arrays.items()}


def write_views_figure(data: Dataset, out: Path, spec: ViewSpec, image_size: int, count: int = 4) -> Path:
    """<cache>.views.png beside the cache: the first image of `count` classes and their view 0."""
    import h5py

    picks = list(np.unique(data.label, return_index=True)[1][:count])
    with h5py.File(out, "r") as f:
        perms = {k: f[f"permutations/{k}"][sorted(picks)] for k in SHUFFLED_KINDS if f"permutations/{k}" in f}
        offsets = f["offsets/patches"][sorted(picks)] if "offsets/patches" in f else None
    picks = sorted(picks)
    images = [load_image(tf.constant(str(data.image_file(i))), image_size).numpy() for i in picks]
    titles = [image_title(data.image_id[i], data.class_names[data.label[i]], sep="\n") for i in picks]
    return save_views_figure(Path(out).with_suffix(".views.png"), images, titles, perms.get("jigsaw"), perms.get("rcm"),
                             spec.jigsaw_grid, spec.rcm_grid,
                             None if offsets is None else (offsets, spec.patch_geometry(image_size)[1], spec.patch_grid))
