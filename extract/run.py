"""Batched extraction of one split into the HDF5 cache, resumable block by block, for any backbone.

Free of TensorFlow and torch: the backbone's own batch loop (`extract.embedding.Embedder.batches`: TF-Hub's
tf.data pipeline, or torch's) computes each block; this module plans the rows, writes and resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from pipeline.datasets import Dataset, cache_official_split
from pipeline.figures import image_title, save_views_figure
from pipeline.progress_lines import EVERY_S, progress_line
from pipeline.schema import SHUFFLED_KINDS, CacheLayout, Shard
from pipeline.views import make_patch_views, make_permutations
from pipeline.writer import CacheWriter

from .config import ViewSpec, extraction_config
from .embedding import Embedder, Work, storage_dtypes
from .sharding.plan import images_per_block, plan_shard
from .writer import BackgroundWriter


@dataclass
class Result:
    out: Path
    status: str  # "new", "resumed" or "complete" (nothing to do)
    rows: int  # rows computed in this run
    inputs: int  # backbone inputs computed in this run
    seconds: float


@dataclass
class _Plan:
    """What one extraction run computes: the file's layout, its rows and the fixed blocks they batch in."""

    layout: CacheLayout
    lo: int  # first row of the split in this file
    hi: int
    block: int  # whole images per forward pass


def _prepare(data: Dataset, backbone: Embedder, spec: ViewSpec, image_size: int, seed: int, spatial: bool,
             batch_size: int, shard: tuple[int, int] | None, input_check: dict | None = None) -> _Plan:
    """The cache layout of this run (the whole split, or shard I of N) with its permutations."""
    config = extraction_config(data, spec, backbone.handle, image_size, seed, spatial, backbone.precision,
                               backbone.preprocessing, backbone.model)
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
    if input_check is not None:  # what pipeline.datasets.integrity found over every split (not part of the config)
        attrs["input_check"] = json.dumps(input_check, sort_keys=True)
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


def _run_batches(data: Dataset, backbone: Embedder, plan: _Plan, rows: np.ndarray, spec: ViewSpec, image_size: int,
                 spatial: bool, submit: Callable, bar: tqdm, after_batch: Callable[[int], None] | None,
                 progress_lines: bool = False) -> int:
    """Compute every pending block through the backbone's own batch loop and hand its arrays to `submit`; rows
    computed. `progress_lines`: print pipeline.progress_lines' line on stdout at most once a second, and at the end."""
    work = Work([str(data.image_file(i)) for i in range(plan.lo, plan.hi)], rows, plan.layout.image_id,
                plan.layout.permutations, plan.layout.offsets.get("patches"), spec, image_size, plan.block, spatial)
    done_rows, said = 0, time.perf_counter()
    for i, (batch_rows, arrays) in enumerate(backbone.batches(work)):
        submit(batch_rows, arrays)  # written while the next batch computes
        done_rows += len(batch_rows)
        bar.update(len(batch_rows))
        if progress_lines and (time.perf_counter() - said >= EVERY_S or done_rows == len(rows)):
            print(progress_line(done_rows, len(rows)), flush=True)
            said = time.perf_counter()
        if after_batch is not None:
            after_batch(i)
    return done_rows


def extract_split(data: Dataset, backbone: Embedder, out: Path, spec: ViewSpec, image_size: int, seed: int,
                  spatial: bool, batch_size: int, overwrite: bool = False, progress: bool = True,
                  after_batch: Callable[[int], None] | None = None, shard: tuple[int, int] | None = None,
                  input_check: dict | None = None, progress_lines: bool = False) -> Result:
    """Write (or resume) the cache for `data` at `out`. `after_batch(i)` is a hook for tests; `progress_lines`:
    rows done of the rows to compute, a line on stdout at most once a second (pipeline.progress_lines).

    Batch i is written by a background thread while the backbone computes batch i + 1.

    With `shard=(I, N)`, `out` receives only shard I of N (`extract.sharding.plan`): a contiguous run of
    whole blocks, each batched exactly as an unsharded run batches it, under the whole run's config.

    `input_check` (pipeline.datasets.integrity.InputCheck.record) is stored as the root attribute `input_check`.
    """
    plan = _prepare(data, backbone, spec, image_size, seed, spatial, batch_size, shard, input_check)
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
    start = time.perf_counter()
    part = plan.layout.shard
    desc = f"extract {data.split}" + (f" shard {part.spec}" if part is not None else "")
    bar = tqdm(total=len(rows), unit="img", desc=desc, smoothing=0.1,
               disable=None if progress else True)  # None: only on a terminal
    background = BackgroundWriter(lambda r, a: writer.write(r, storage_dtypes(a)), out)
    try:
        done_rows = _run_batches(data, backbone, plan, rows, spec, image_size, spatial, background.submit, bar,
                                 after_batch, progress_lines)
        background.close()  # every batch written, or the writer's error raised here
        writer.finish()
    finally:
        background.close(check=False)  # an interrupted run still writes the batches already computed
        bar.close()
        writer.close()
    return Result(Path(out), writer.status, done_rows, done_rows * spec.per_image, time.perf_counter() - start)


def write_views_figure(data: Dataset, out: Path, spec: ViewSpec, image_size: int, count: int = 4) -> Path:
    """<cache>.views.png beside the cache: the first image of `count` classes and their view 0, each image
    decoded and resized as the cache's backbone saw it (TF-Hub's tf.data, or a torch backbone's PIL loader)."""
    import h5py

    picks = list(np.unique(data.label, return_index=True)[1][:count])
    with h5py.File(out, "r") as f:
        perms = {k: f[f"permutations/{k}"][sorted(picks)] for k in SHUFFLED_KINDS if f"permutations/{k}" in f}
        offsets = f["offsets/patches"][sorted(picks)] if "offsets/patches" in f else None
        torch_model = "model" in json.loads(f.attrs["config"])
    picks = sorted(picks)
    images = [_load_for_figure(str(data.image_file(i)), image_size, torch_model) for i in picks]
    titles = [image_title(data.image_id[i], data.class_names[data.label[i]], sep="\n") for i in picks]
    return save_views_figure(Path(out).with_suffix(".views.png"), images, titles, perms.get("jigsaw"), perms.get("rcm"),
                             spec.jigsaw_grid, spec.rcm_grid,
                             None if offsets is None else (offsets, spec.patch_geometry(image_size)[1], spec.patch_grid))


def _load_for_figure(path: str, image_size: int, torch_model: bool) -> np.ndarray:
    """(S, S, 3) float in [0, 1], decoded and resized by the loader the cache's backbone used."""
    if torch_model:
        from .images import load_rgb

        return load_rgb(path, image_size).astype(np.float32) / 255.0
    import tensorflow as tf

    from .inputs import load_image

    return load_image(tf.constant(path), image_size).numpy()
