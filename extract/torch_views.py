"""The contract's views in torch ops, on the device the model runs on: `pipeline.views.apply_permutation` and
`cut_patches` over a batch of images (B, C, H, W), so only each image crosses to the GPU, not its 9 views.

Tiles are (H // grid) x (W // grid); the bottom/right border left over stays in place (the contract's rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import ViewSpec


def permute_tiles(images: Any, perms: Any, grid: int) -> Any:
    """(B, V, C, H, W): for each image and each of its V permutations (B, V, grid*grid), position p receives
    original tile perm[p]."""
    import torch

    b, c, height, width = images.shape
    h, w = height // grid, width // grid
    if h == 0 or w == 0:
        raise ValueError(f"image of {(height, width)} is too small for a {grid}x{grid} grid")
    v = perms.shape[1]
    tiles = images[:, :, : h * grid, : w * grid].reshape(b, c, grid, h, grid, w)
    tiles = tiles.permute(0, 2, 4, 1, 3, 5).reshape(b, grid * grid, c, h, w)
    moved = tiles[torch.arange(b, device=images.device)[:, None, None], perms.long()]  # (B, V, G*G, C, h, w)
    moved = moved.reshape(b, v, grid, grid, c, h, w).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, v, c, h * grid, w * grid)
    if (h * grid, w * grid) == (height, width):
        return moved
    out = images[:, None].expand(b, v, c, height, width).clone()
    out[..., : h * grid, : w * grid] = moved
    return out


def cut_patches(images: Any, offsets: Any, patch: int) -> Any:
    """(B, K, C, P, P): the crops images[b, :, y:y+P, x:x+P] at each image's K (y, x) offsets (B, K, 2)."""
    import torch

    steps = torch.arange(patch, device=images.device)
    offsets = offsets.long()
    ys = offsets[..., :1] + steps  # (B, K, P)
    xs = offsets[..., 1:] + steps
    batch = torch.arange(images.shape[0], device=images.device)[:, None, None, None]
    crops = images[batch, :, ys[..., :, None], xs[..., None, :]]  # (B, K, P, P, C): advanced indices first
    return crops.permute(0, 1, 4, 2, 3)


def whole_views(images: Any, rows: np.ndarray, perms: dict[str, np.ndarray], spec: ViewSpec) -> Any:
    """(B, K, C, S, S): the original (if asked for) then the V jigsaw and V RCM views of each image, in the
    cache's order (extract.embedding.split_outputs)."""
    import torch

    out = [images[:, None]] if "original" in spec.kinds else []
    for kind, grid in (("jigsaw", spec.jigsaw_grid), ("rcm", spec.rcm_grid)):
        if kind in spec.kinds:
            p = torch.from_numpy(np.ascontiguousarray(perms[kind][rows])).to(images.device)
            out.append(permute_tiles(images, p, grid))
    return torch.cat(out, dim=1)
