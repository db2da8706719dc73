"""views.png: a few images beside their jigsaw and RCM shuffles and their patch crops, as the backbone saw
them (report Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import created_atomically
from .cub import display_name
from .views import apply_permutation, cut_patches


def image_title(image_id: int, class_name: str, sep: str = " · ") -> str:
    """'image_id 123 · Black footed Albatross': says which number is the CUB image id."""
    return f"image_id {int(image_id)}{sep}{display_name(class_name)}"


def patch_mosaic(image: np.ndarray, offsets: np.ndarray, patch: int, grid: int, gap: int = 2) -> np.ndarray:
    """The grid*grid patch crops of one view laid out in their stored (shuffled) order, row-major, with
    white gaps: slot p shows the crop at offsets[p] (cut from cell perm[p])."""
    crops = cut_patches(image, offsets, patch)
    step = patch + gap
    out = np.ones((grid * step - gap, grid * step - gap, *image.shape[2:]), dtype=image.dtype)
    for p, crop in enumerate(crops):
        r, c = divmod(p, grid)
        out[r * step: r * step + patch, c * step: c * step + patch] = crop
    return out


def save_views_figure(path: str | Path, images: list[np.ndarray], titles: list[str],
                      jigsaw: np.ndarray | None, rcm: np.ndarray | None, jigsaw_grid: int, rcm_grid: int,
                      patches: tuple[np.ndarray, int, int] | None = None) -> Path:
    """One row per image: original, jigsaw view 0 (with its grid), RCM view 0 (with its grid) and, with
    `patches` = (offsets (n, V, G*G, 2), patch size, G), the patches of view 0 in their shuffled order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [("original", None, 0)]
    if jigsaw is not None:
        columns.append((f"jigsaw {jigsaw_grid}x{jigsaw_grid}", jigsaw, jigsaw_grid))
    if rcm is not None:
        columns.append((f"RCM {rcm_grid}x{rcm_grid}", rcm, rcm_grid))
    if patches is not None:
        columns.append(("patches, view 0 order", "patches", 0))
    fig, axes = plt.subplots(len(images), len(columns), figsize=(2.4 * len(columns), 2.4 * len(images)), squeeze=False)
    for r, (image, title) in enumerate(zip(images, titles)):
        for c, (name, perms, grid) in enumerate(columns):
            ax = axes[r, c]
            if perms is None:
                shown = image
            elif isinstance(perms, str):
                offsets, size, pgrid = patches  # type: ignore[misc]
                shown = patch_mosaic(image, offsets[r][0], size, pgrid)
            else:
                shown = apply_permutation(image, perms[r][0], grid)
            ax.imshow(np.clip(shown, 0, 1))
            if grid:
                step = image.shape[0] // grid
                for k in range(1, grid):
                    ax.axhline(k * step - 0.5, color="white", lw=0.4)
                    ax.axvline(k * step - 0.5, color="white", lw=0.4)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(title, fontsize=7)
    fig.tight_layout()
    path = Path(path)
    with created_atomically(path) as tmp:  # a kill mid-write never leaves a truncated PNG at `path`
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
