"""Shuffled views, pure numpy: jigsaw (PIRL) and region confusion (DCL, report eq. 1-3).

Convention for every permutation: `perm[p]` is the row-major index of the ORIGINAL tile that now
sits at position p of the shuffled image. Tiles are cut from the image after it is resized to the
model's input size; with a size not divisible by the grid, tiles are `size // grid` pixels and the
remaining bottom/right border stays in place.
Permutations are a pure function of (seed, image_id, view kind, view index).
"""

from __future__ import annotations

import numpy as np

SHUFFLED_KINDS = ("jigsaw", "rcm")  # the view kinds made by permuting tiles; the one definition
_KIND_CODE = {"jigsaw": 1, "rcm": 2}


def view_rng(seed: int, image_id: int, kind: str, view_index: int) -> np.random.Generator:
    """The generator for one view: independent of batch order, resumes and splits."""
    return np.random.default_rng([int(seed), int(image_id), _KIND_CODE[kind], int(view_index)])


def jigsaw_permutation(rng: np.random.Generator, grid: int) -> np.ndarray:
    """A uniformly random permutation of the grid x grid tiles (PIRL)."""
    return rng.permutation(grid * grid).astype(np.int16)


def _local_shuffle(rng: np.random.Generator, n: int, k: float) -> np.ndarray:
    """sigma = argsort(i + U(-k, k)), report eq. 1-2: sigma[i] is the source index placed at i."""
    q = np.arange(n) + rng.uniform(-k, k, size=n)
    return np.argsort(q, kind="stable")


def rcm_permutation(rng: np.random.Generator, grid: int, k: float) -> np.ndarray:
    """Region confusion (DCL, report eq. 1-3): shuffle within each row, then within each column.

    Every region ends less than 2k away from its origin along each axis.
    """
    if not 1 <= k < grid:
        raise ValueError(f"rcm k: expected 1 <= k < grid ({grid}), found {k}")
    src = np.arange(grid * grid).reshape(grid, grid)  # src[r, c]: original index at (r, c)
    rows = np.stack([src[r, _local_shuffle(rng, grid, k)] for r in range(grid)])
    out = np.stack([rows[_local_shuffle(rng, grid, k), c] for c in range(grid)], axis=1)
    return out.reshape(-1).astype(np.int16)


def make_permutation(kind: str, seed: int, image_id: int, view_index: int, grid: int, k: float = 2) -> np.ndarray:
    """The permutation of view `view_index` of `kind` for one image."""
    rng = view_rng(seed, image_id, kind, view_index)
    if kind == "jigsaw":
        return jigsaw_permutation(rng, grid)
    if kind == "rcm":
        return rcm_permutation(rng, grid, k)
    raise ValueError(f"view kind: expected one of {SHUFFLED_KINDS}, found {kind!r}")


def make_permutations(kind: str, seed: int, image_ids: np.ndarray, num_views: int, grid: int, k: float = 2) -> np.ndarray:
    """(N, num_views, grid*grid) int16 permutations for many images."""
    out = np.empty((len(image_ids), num_views, grid * grid), dtype=np.int16)
    for n, image_id in enumerate(image_ids):
        for v in range(num_views):
            out[n, v] = make_permutation(kind, seed, int(image_id), v, grid, k)
    return out


def apply_permutation(image: np.ndarray, perm: np.ndarray, grid: int) -> np.ndarray:
    """Move tiles: position p of the result receives original tile perm[p]. image is (H, W, ...)."""
    h, w = image.shape[0] // grid, image.shape[1] // grid
    if h == 0 or w == 0:
        raise ValueError(f"image of {image.shape[:2]} is too small for a {grid}x{grid} grid")
    perm = np.asarray(perm)
    if sorted(perm.tolist()) != list(range(grid * grid)):
        raise ValueError(f"not a permutation of {grid * grid} tiles: {perm.tolist()}")
    core = image[: h * grid, : w * grid]
    tiles = core.reshape(grid, h, grid, w, *image.shape[2:]).swapaxes(1, 2)  # (g, g, h, w, ...)
    tiles = tiles.reshape(grid * grid, h, w, *image.shape[2:])[perm]
    shuffled = tiles.reshape(grid, grid, h, w, *image.shape[2:]).swapaxes(1, 2)
    out = image.copy()
    out[: h * grid, : w * grid] = shuffled.reshape(h * grid, w * grid, *image.shape[2:])
    return out


def original_positions(perm: np.ndarray, grid: int) -> np.ndarray:
    """(..., grid*grid, 2): the original (row, col) of the tile at each position p, i.e. divmod(perm[p], grid)."""
    perm = np.asarray(perm, dtype=np.int64)
    return np.stack([perm // grid, perm % grid], axis=-1)
