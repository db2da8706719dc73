"""Views built with TensorFlow ops are bit-identical to pipeline.views.apply_permutation (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from extract.inputs import ViewSpec, build_views, permute_tiles
from pipeline.views import apply_permutation, make_permutations

pytestmark = pytest.mark.tf  # needs TensorFlow (stage 1)


@pytest.mark.parametrize("height,width,grid", [
    (63, 63, 3), (64, 64, 3), (64, 64, 7), (66, 71, 7), (50, 41, 3), (7, 9, 7),  # borders of 0..6 px stay in place
])
def test_permute_tiles_matches_numpy_bit_for_bit(height, width, grid):
    rng = np.random.default_rng(height * 100 + width)
    image = rng.random((height, width, 3), dtype=np.float32)
    perms = np.stack([rng.permutation(grid * grid) for _ in range(3)]).astype(np.int16)
    got = permute_tiles(tf.constant(image), tf.constant(perms), grid).numpy()
    assert got.shape == (3, height, width, 3) and got.dtype == np.float32
    for v, perm in enumerate(perms):
        assert np.array_equal(got[v], apply_permutation(image, perm, grid)), v
    identity = permute_tiles(tf.constant(image), tf.constant(np.arange(grid * grid)[None]), grid).numpy()
    assert np.array_equal(identity[0], image)


def test_build_views_order_original_jigsaw_rcm():
    spec = ViewSpec(("original", "jigsaw", "rcm"), 2, 3, 7, 2)
    image = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    jig = make_permutations("jigsaw", 0, np.array([5]), 2, 3)[0]
    rcm = make_permutations("rcm", 0, np.array([5]), 2, 7, 2)[0]
    stack = build_views(tf.constant(image), tf.constant(jig), tf.constant(rcm), spec).numpy()
    expected = [image] + [apply_permutation(image, p, 3) for p in jig] + [apply_permutation(image, p, 7) for p in rcm]
    assert stack.shape == (5, 64, 64, 3) and all(np.array_equal(a, b) for a, b in zip(stack, expected))
    assert not np.array_equal(stack[1], image)


def test_too_small_for_grid():
    with pytest.raises(ValueError, match="too small for a 7x7 grid"):
        permute_tiles(tf.zeros([6, 64, 3]), tf.constant([list(range(49))]), 7)
