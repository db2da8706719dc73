"""tf.data input pipeline: parallel decode, resize, view construction, prefetch.

Decoding keeps the one decoder contract (`pipeline.decode`): a plain RGB or grayscale JPEG (the common case, CUB's
every file) is decoded by TensorFlow's own decoder with libjpeg's accurate integer DCT (PIL's), in TensorFlow ops;
every other file (PNG, TIFF, GIF, WebP, BMP, CMYK JPEG, 16-bit and float samples) goes through the contract's PIL
decoder in a tf.numpy_function, so both loaders see the same picture. Resizing and views run in TensorFlow ops
(no Python GIL), so they scale with the cores that feed a GPU.

Each element is one image: (row, stack, patches) with stack (K, S, S, 3) float32 in [0, 1], K = the
original (if asked for) followed by V jigsaw and V RCM views, in that order, and patches (V * G*G, P, P, 3)
the patch crops of the V "patches" views, each view's in its shuffled order (none without that kind).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from pipeline.decode import decode_rgb, probe

from .config import ViewSpec


def tf_native(files: list[str]) -> np.ndarray:
    """(N,) bool: which files TensorFlow's JPEG decoder gives the contract's picture (`pipeline.decode.Probe`)."""
    return np.asarray([probe(f).tf_native for f in files], dtype=bool)


def _pil_decode(path) -> np.ndarray:
    """The contract's PIL decoder on a path tf.numpy_function hands over (bytes, or a 0-d array of them)."""
    return decode_rgb(os.fsdecode(path.item() if isinstance(path, np.ndarray) else path))


def decode(path: tf.Tensor, native: tf.Tensor) -> tf.Tensor:
    """(H, W, 3) uint8, the contract's picture: TensorFlow's JPEG decoder for a native file, the contract's PIL
    decoder otherwise (an UnreadableImage from it surfaces as an OpError, told by extract.tf_batches)."""
    def jpeg():
        return tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")

    def pil():
        return tf.numpy_function(_pil_decode, [path], tf.uint8, stateful=False)

    image = tf.cond(native, jpeg, pil)
    image.set_shape([None, None, 3])
    return image


def load_image(path: tf.Tensor, image_size: int, native: tf.Tensor | bool | None = None) -> tf.Tensor:
    """TF-Hub image contract: decode (`decode`) to RGB, resize to image_size, float32 in [0, 1]. `native` None:
    probe the file here (eager calls)."""
    if native is None:
        native = bool(tf_native([os.fsdecode(path.numpy() if hasattr(path, "numpy") else path)])[0])
    image = decode(path, tf.convert_to_tensor(native, tf.bool))
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 1.0)


def permute_tiles(image: tf.Tensor, perms: tf.Tensor, grid: int) -> tf.Tensor:
    """(V, H, W, C): for each of the V permutations (V, grid*grid), position p receives original tile
    perm[p]; pipeline.views.apply_permutation in TensorFlow ops (a gather over tiles, no Python, no GIL).

    Tiles are (H // grid) x (W // grid); the bottom/right border left over stays in place.
    """
    height, width, channels = (int(d) for d in image.shape)
    h, w = height // grid, width // grid
    if h == 0 or w == 0:
        raise ValueError(f"image of {(height, width)} is too small for a {grid}x{grid} grid")
    tiles = tf.reshape(image[: h * grid, : w * grid], [grid, h, grid, w, channels])
    tiles = tf.reshape(tf.transpose(tiles, [0, 2, 1, 3, 4]), [grid * grid, h, w, channels])
    moved = tf.gather(tiles, tf.cast(perms, tf.int32))  # (V, grid*grid, h, w, C)
    views = tf.shape(moved)[0]
    moved = tf.reshape(moved, [views, grid, grid, h, w, channels])
    out = tf.reshape(tf.transpose(moved, [0, 1, 3, 2, 4, 5]), [views, h * grid, w * grid, channels])
    if w * grid < width:  # right border, rows of the core
        out = tf.concat([out, tf.repeat(image[None, : h * grid, w * grid:], views, axis=0)], axis=2)
    if h * grid < height:  # bottom border, full width
        out = tf.concat([out, tf.repeat(image[None, h * grid:], views, axis=0)], axis=1)
    return out


def cut_patches(image: tf.Tensor, offsets: tf.Tensor, patch: int) -> tf.Tensor:
    """(K, P, P, C): the crops image[y:y+P, x:x+P] at the K (y, x) offsets (K, 2), exact pixels (two gathers);
    pipeline.views.cut_patches in TensorFlow ops."""
    offsets = tf.cast(offsets, tf.int32)
    steps = tf.range(patch, dtype=tf.int32)
    rows = tf.gather(image, offsets[:, :1] + steps[None], axis=0)  # (K, P, W, C)
    return tf.gather(rows, offsets[:, 1:] + steps[None], axis=2, batch_dims=1)  # (K, P, P, C)


def build_views(image: tf.Tensor, jigsaw: tf.Tensor, rcm: tf.Tensor, spec: ViewSpec) -> tf.Tensor:
    """(K, S, S, 3): the original then each shuffled view, tiles moved as the permutations say."""
    out = [image[None]] if "original" in spec.kinds else []
    if "jigsaw" in spec.kinds:
        out.append(permute_tiles(image, jigsaw, spec.jigsaw_grid))
    if "rcm" in spec.kinds:
        out.append(permute_tiles(image, rcm, spec.rcm_grid))
    return tf.concat(out, axis=0)


def make_dataset(files: list[str], rows: np.ndarray, perms: dict[str, np.ndarray], spec: ViewSpec,
                 image_size: int, images_per_batch: int,
                 offsets: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches of (rows (B,), stacks (B, K, S, S, 3), patches (B, V * G*G, P, P, 3)) over `rows`, in order;
    `offsets` (N, V, G*G, 2) are the patch crops' corners (pipeline.views.make_patch_views)."""
    n = len(rows)
    jig = perms.get("jigsaw", np.zeros((len(files), 0, 1), np.int16))[rows]
    rcm = perms.get("rcm", np.zeros((len(files), 0, 1), np.int16))[rows]
    has_patches = "patches" in spec.kinds
    patch = spec.patch_geometry(image_size)[1] if has_patches else 1
    corners = (offsets if has_patches else np.zeros((len(files), 0, 1, 2), np.int16))[rows]
    corners = corners.reshape(n, -1, 2)
    paths = np.asarray([files[r] for r in rows], dtype=object)
    k, num_patches = spec.whole_per_image, corners.shape[1]

    def views(row, path, native, j, r, c):
        image = load_image(path, image_size, native)
        image.set_shape([image_size, image_size, 3])
        stack = build_views(image, j, r, spec) if k else tf.zeros([0, image_size, image_size, 3])
        stack.set_shape([k, image_size, image_size, 3])
        crops = cut_patches(image, c, patch) if num_patches else tf.zeros([0, patch, patch, 3])
        crops.set_shape([num_patches, patch, patch, 3])
        return row, stack, crops

    ds = tf.data.Dataset.from_tensor_slices((rows.astype(np.int64), paths.astype(str), tf_native(list(paths)), jig, rcm,
                                             corners))
    ds = ds.map(views, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(images_per_batch).prefetch(2) if n else ds.batch(1)
