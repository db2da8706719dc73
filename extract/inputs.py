"""tf.data input pipeline: parallel decode, resize, view construction, prefetch.

Each element is one image: (row, stack) with stack (K, S, S, 3) float32 in [0, 1], K = the original
(if asked for) followed by V jigsaw and V RCM views, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pipeline.views import apply_permutation


@dataclass(frozen=True)
class ViewSpec:
    kinds: tuple[str, ...]  # subset of ("original", "jigsaw", "rcm"), in that order
    num_views: int
    jigsaw_grid: int
    rcm_grid: int
    rcm_k: float

    @property
    def per_image(self) -> int:
        """Backbone inputs per image."""
        return ("original" in self.kinds) + self.num_views * sum(k in self.kinds for k in ("jigsaw", "rcm"))

    def as_config(self) -> dict:
        return {"kinds": list(self.kinds), "num_views": self.num_views, "jigsaw_grid": self.jigsaw_grid,
                "rcm_grid": self.rcm_grid, "rcm_k": self.rcm_k}


def load_image(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """TF-Hub image contract: decode with 3 channels, resize to image_size, float32 in [0, 1]."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 1.0)


def build_views(image: np.ndarray, jigsaw: np.ndarray, rcm: np.ndarray, spec: ViewSpec) -> np.ndarray:
    """(K, S, S, 3): the original then each shuffled view, tiles moved as the permutations say."""
    out = [image] if "original" in spec.kinds else []
    if "jigsaw" in spec.kinds:
        out += [apply_permutation(image, p, spec.jigsaw_grid) for p in jigsaw]
    if "rcm" in spec.kinds:
        out += [apply_permutation(image, p, spec.rcm_grid) for p in rcm]
    return np.stack(out).astype(np.float32)


def make_dataset(files: list[str], rows: np.ndarray, perms: dict[str, np.ndarray], spec: ViewSpec,
                 image_size: int, images_per_batch: int) -> tf.data.Dataset:
    """Batches of (rows (B,), stacks (B, K, S, S, 3)) over `rows`, in order."""
    n = len(rows)
    jig = perms.get("jigsaw", np.zeros((len(files), 0, 1), np.int16))[rows]
    rcm = perms.get("rcm", np.zeros((len(files), 0, 1), np.int16))[rows]
    paths = np.asarray([files[r] for r in rows], dtype=object)
    k = spec.per_image

    def views(row, path, j, r):
        image = load_image(path, image_size)
        stack = tf.numpy_function(lambda i, a, b: build_views(i, a, b, spec), [image, j, r], tf.float32)
        stack.set_shape([k, image_size, image_size, 3])
        return row, stack

    ds = tf.data.Dataset.from_tensor_slices((rows.astype(np.int64), paths.astype(str), jig, rcm))
    ds = ds.map(views, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(images_per_batch).prefetch(2) if n else ds.batch(1)
