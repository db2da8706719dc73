"""Views: valid permutations, the RCM bound, uniform jigsaw, determinism, pixels moved as perm says."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from pipeline.views import apply_permutation, make_permutation, make_permutations, original_positions


@pytest.mark.parametrize("kind,grid", [("jigsaw", 3), ("rcm", 7), ("rcm", 4)])
def test_permutations_are_valid(kind, grid):
    for image_id in range(1, 200):
        p = make_permutation(kind, 0, image_id, 0, grid, k=2 if grid > 2 else 1)
        assert p.dtype == np.int16 and sorted(p.tolist()) == list(range(grid * grid))


@pytest.mark.parametrize("grid,k", [(7, 2), (7, 1), (7, 3.5), (5, 2)])
def test_rcm_moves_every_region_less_than_2k(grid, k):
    perms = make_permutations("rcm", 3, np.arange(1, 1001), 2, grid, k)
    pos = np.arange(grid * grid)
    src = original_positions(perms, grid)  # (..., P, 2) original (row, col) of the tile at p
    drow = np.abs(src[..., 0] - pos // grid)
    dcol = np.abs(src[..., 1] - pos % grid)
    assert drow.max() < 2 * k and dcol.max() < 2 * k
    assert (perms != pos).any(axis=-1).mean() > 0.9  # and it does shuffle


def test_rcm_rejects_k_out_of_range():
    with pytest.raises(ValueError, match="1 <= k < grid"):
        make_permutation("rcm", 0, 1, 0, 7, k=7)


def test_jigsaw_positions_are_uniform():
    perms = make_permutations("jigsaw", 0, np.arange(1, 4501), 1, 3)[:, 0]
    for p in range(9):  # which original tile lands at position p: uniform over the 9 tiles
        counts = np.bincount(perms[:, p], minlength=9)
        assert chisquare(counts).pvalue > 1e-3, (p, counts)


def test_same_seed_image_view_same_permutation():
    a = make_permutation("rcm", 5, 42, 3, 7, 2)
    assert np.array_equal(a, make_permutation("rcm", 5, 42, 3, 7, 2))
    batch = make_permutations("rcm", 5, np.array([1, 42]), 4, 7, 2)
    assert np.array_equal(batch[1, 3], a)  # independent of which other images are in the batch
    others = [make_permutation("rcm", 6, 42, 3, 7, 2), make_permutation("rcm", 5, 43, 3, 7, 2),
              make_permutation("rcm", 5, 42, 2, 7, 2), make_permutation("jigsaw", 5, 42, 3, 7, 2)]
    assert all(not np.array_equal(a, o) for o in others)


@pytest.mark.parametrize("size,grid", [(12, 3), (14, 7), (224, 3), (64, 7)])
def test_pixels_are_the_original_tiles_moved(size, grid):
    rng = np.random.default_rng(0)
    image = rng.random((size, size, 3)).astype(np.float32)
    perm = rng.permutation(grid * grid)
    out = apply_permutation(image, perm, grid)
    t = size // grid
    for p in range(grid * grid):
        r, c = divmod(p, grid)
        sr, sc = divmod(int(perm[p]), grid)
        assert np.array_equal(out[r * t:(r + 1) * t, c * t:(c + 1) * t], image[sr * t:(sr + 1) * t, sc * t:(sc + 1) * t])
    # the border left over when size is not divisible by grid stays in place
    assert np.array_equal(out[t * grid:], image[t * grid:]) and np.array_equal(out[:, t * grid:], image[:, t * grid:])


def test_hand_made_case():
    image = np.arange(16).reshape(4, 4)
    out = apply_permutation(image, [3, 2, 1, 0], 2)  # tile 3 (bottom right) to position 0, ...
    assert out.tolist() == [[10, 11, 8, 9], [14, 15, 12, 13], [2, 3, 0, 1], [6, 7, 4, 5]]
    assert original_positions(np.array([3, 2, 1, 0]), 2).tolist() == [[1, 1], [1, 0], [0, 1], [0, 0]]


def test_apply_rejects_non_permutation():
    with pytest.raises(ValueError, match="not a permutation"):
        apply_permutation(np.zeros((4, 4)), [0, 0, 1, 2], 2)
