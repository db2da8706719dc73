"""The TF-Hub backbone's batch loop (`extract.embedding`'s contract): the tf.data input pipeline
(`extract.inputs`: decode, resize, views, in parallel and prefetched) feeds the model block by block."""

from __future__ import annotations

import re
from typing import Any, Iterator

import numpy as np
import tensorflow as tf

from pipeline.decode import UnreadableImage, decode_rgb
from pipeline.errors import PipelineError

from .config import ViewSpec
from .embedding import Batch, Work, split_outputs
from .inputs import load_image, make_dataset, tf_native
from .precision import apply_precision

Backbone = Any  # extract.backbone.Backbone (not imported: it imports this module)


def find_bad_image(files: list[str], rows: np.ndarray, image_ids: np.ndarray, image_size: int) -> str:
    """The first of `rows` whose image does not decode, as one line naming the file, its image id and why (the
    contract's own reason for a file its PIL decoder reads)."""
    for r in rows:
        native = bool(tf_native([files[r]])[0])
        try:
            if not native:
                decode_rgb(files[r])
            load_image(tf.constant(files[r]), image_size, native)
        except UnreadableImage as e:
            return str(UnreadableImage(e.path, e.reason, int(image_ids[r])))
        except tf.errors.OpError as e:
            return f"{files[r]}: cannot decode image (image_id {image_ids[r]}): {_op_error_text(e)}"
    return f"decoding failed in rows {rows[0]}..{rows[-1]} but each image decodes alone"


def _op_error_text(error: tf.errors.OpError) -> str:
    """TensorFlow's message without its internals: '{{function_node ...}}', '[Op:...]', 'name: '."""
    text = re.sub(r"\{\{[^}]*\}\}", "", error.message.splitlines()[0])
    text = re.sub(r"\[Op:\w+\].*$", "", text)
    text = text.replace("jpeg::Uncompress failed. ", "").strip().rstrip(".")
    return text or type(error).__name__


def whole_outputs(backbone: Backbone, stacks: tf.Tensor, spec: ViewSpec, image_size: int,
                  spatial: bool) -> dict[str, np.ndarray]:
    """The backbone on one batch's full-size inputs (b, K, S, S, 3) -> the cache's arrays of those kinds."""
    b, k = int(stacks.shape[0]), spec.whole_per_image
    if not k:
        return {}
    pooled, maps = backbone.run(tf.reshape(stacks, [-1, image_size, image_size, 3]))
    pooled = pooled.numpy().reshape(b, k, -1)
    maps = maps.numpy().reshape(b, k, *maps.shape[1:]) if spatial else None
    return split_outputs(pooled, maps, spec)


def embed_patches(backbone: Backbone, patches: tf.Tensor, num_views: int) -> np.ndarray:
    """(b, V * G*G, P, P, 3) patch crops -> (b, V, G*G, D) pooled features, each patch at its own size."""
    b, count, size = int(patches.shape[0]), int(patches.shape[1]), int(patches.shape[2])
    pooled, _ = backbone.run(tf.reshape(patches, [-1, size, size, 3]))
    return pooled.numpy().reshape(b, num_views, count // num_views, -1)


def tf_batches(backbone: Backbone, work: Work) -> Iterator[Batch]:
    """Every pending block through the backbone, in order: (rows, arrays by cache name)."""
    # TensorFlow's mixed-precision rewrite is a process-wide setting applied when a function is traced: set it to
    # this backbone's precision, so an earlier extraction in the same process at another precision cannot leak in
    apply_precision(backbone.precision)
    spec, size = work.spec, work.image_size
    ds = make_dataset(work.files, work.rows, work.permutations, spec, size, work.block, work.offsets)
    iterator = iter(ds)
    for i in range(-(-len(work.rows) // work.block)):
        try:
            batch_rows, stacks, patches = next(iterator)
        except tf.errors.OpError:
            expected = work.rows[i * work.block: (i + 1) * work.block]
            raise PipelineError(find_bad_image(work.files, expected, work.image_id, size)) from None
        arrays = whole_outputs(backbone, stacks, spec, size, work.spatial)
        if "patches" in spec.kinds:
            arrays["features/patches"] = embed_patches(backbone, patches, spec.num_views)
        yield batch_rows.numpy(), arrays
