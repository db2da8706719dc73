"""Shuffled views, pure numpy: jigsaw (PIRL), region confusion (DCL, report eq. 1-3) and jigsaw patches
(PIRL in the paper's form: nine separate patch crops, VISSL's geometry).

Convention for every permutation: `perm[p]` is the row-major index of the ORIGINAL tile that now
sits at position p of the shuffled image. Tiles are cut from the image after it is resized to the
model's input size; with a size not divisible by the grid, tiles are `size // grid` pixels and the
remaining bottom/right border stays in place.
Permutations are a pure function of (seed, image_id, view kind, view index).

Patches ("patches"): the resized image (size S) is cut into a grid x grid of cells of S // grid
pixels; each view is the grid*grid patch crops, P x P pixels each, listed in a shuffled order:
position p holds a crop of original cell perm[p], at top-left pixel offsets[p] = (y, x) with
y = row * cell + dy, x = col * cell + dx and dy, dx drawn uniformly from 0..jitter (jitter <= cell - P,
so a patch never leaves its cell). VISSL's proportions are the defaults: 64 px patches in 85 px
cells of a 255 px crop (P = round(cell * 64 / 85), jitter = cell - P). The view's generator draws the
permutation first (so `make_permutation("patches", ...)` is the view's order), then the offsets.
"""

from __future__ import annotations

import numpy as np

from .errors import PipelineError

# the view kinds whose V views per image each carry a permutation (tiles moved, or patches listed in a
# shuffled order); the one definition
SHUFFLED_KINDS = ("jigsaw", "rcm", "patches")
_KIND_CODE = {"jigsaw": 1, "rcm": 2, "patches": 3}
PATCH_OF_CELL = 64 / 85  # VISSL: 64 px patches in 85 px cells (a 255 px crop cut 3 x 3)
DEFAULT_PATCH_GRID = 3


def view_rng(seed: int, image_id: int, kind: str, view_index: int) -> np.random.Generator:
    """The generator for one view: independent of batch order, resumes and splits."""
    if int(image_id) < 0 or int(seed) < 0:  # readers refuse such ids first (pipeline.datasets); a direct caller too
        raise PipelineError(f"image_id {image_id}, seed {seed}: views are drawn for non-negative ids and seeds only")
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
    if kind in ("jigsaw", "patches"):
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


# --- jigsaw patches (PIRL in the paper's form) ---

def patch_geometry(image_size: int, grid: int = DEFAULT_PATCH_GRID, patch_size: int | None = None,
                   jitter: int | None = None) -> tuple[int, int, int]:
    """(cell, patch, jitter) in pixels for an image of `image_size`; None takes VISSL's proportions.

    ValueError (naming the option) when the patch does not fit its cell or the jitter would leave it.
    """
    cell = int(image_size) // int(grid)
    if cell < 1:
        raise ValueError(f"--patch-grid: an image of {image_size} px is too small for a {grid}x{grid} grid")
    patch = max(1, round(cell * PATCH_OF_CELL)) if patch_size is None else int(patch_size)
    if not 1 <= patch <= cell:
        raise ValueError(f"--patch-size: expected 1..{cell} px (the cell of a {grid}x{grid} grid of a "
                         f"{image_size} px image), found {patch}")
    jitter = cell - patch if jitter is None else int(jitter)
    if not 0 <= jitter <= cell - patch:
        raise ValueError(f"--patch-jitter: expected 0..{cell - patch} px (cell {cell} - patch {patch}), found {jitter}")
    return cell, patch, jitter


def patch_view(rng: np.random.Generator, grid: int, cell: int, jitter: int) -> tuple[np.ndarray, np.ndarray]:
    """One view: (perm (grid*grid,) int16, offsets (grid*grid, 2) int16), offsets[p] = (y, x) of the crop
    at position p, cut from original cell perm[p] with a jitter of 0..jitter pixels per axis."""
    perm = jigsaw_permutation(rng, grid)
    shift = rng.integers(0, jitter + 1, size=(grid * grid, 2))
    cells = original_positions(perm, grid)  # (grid*grid, 2): (row, col) of the source cell per position
    return perm, (cells * cell + shift).astype(np.int16)


def make_patch_views(seed: int, image_ids: np.ndarray, num_views: int, image_size: int,
                     grid: int = DEFAULT_PATCH_GRID, patch_size: int | None = None,
                     jitter: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(perms (N, V, grid*grid) int16, offsets (N, V, grid*grid, 2) int16) for many images."""
    cell, _, jitter = patch_geometry(image_size, grid, patch_size, jitter)
    n, k = len(image_ids), grid * grid
    perms = np.empty((n, num_views, k), dtype=np.int16)
    offsets = np.empty((n, num_views, k, 2), dtype=np.int16)
    for i, image_id in enumerate(image_ids):
        for v in range(num_views):
            perms[i, v], offsets[i, v] = patch_view(view_rng(seed, int(image_id), "patches", v), grid, cell, jitter)
    return perms, offsets


def cut_patches(image: np.ndarray, offsets: np.ndarray, patch: int) -> np.ndarray:
    """(K, P, P, ...): the crops image[y:y+P, x:x+P] at each of the K offsets, in the order given."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if (offsets < 0).any() or (offsets.max(0) + patch > np.asarray(image.shape[:2])).any():
        raise ValueError(f"patch offsets {offsets.tolist()} + {patch} px leave an image of {image.shape[:2]}")
    return np.stack([image[y:y + patch, x:x + patch] for y, x in offsets])
