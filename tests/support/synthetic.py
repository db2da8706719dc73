"""Synthetic feature caches for tests and benchmarks, no images, in two shapes (`features=`):

"gaussian" (bookkeeping tests): row i of class c has original feature mu_c + noise * e_i with e_i ~ N(0, I);
each shuffled view is the original plus `view_noise` * fresh Gaussian noise, so the views carry the class as
real jigsaw features do. With equal priors and isotropic noise the Bayes-optimal rule is the nearest class
mean, so `bayes_accuracy` gives the accuracy a classifier can hope for on a given cache. Zero-centred, with
no shared component: a method can learn on these and still fail on a real backbone's features.

"resnet" (every test that asserts a method learns): shaped like a post-ReLU backbone's (`resnet_like`).
Each map position is s * relu(b + m_c + u_i + q_p + noise): a large offset b shared by every image and
position (most channels fire often, so a large shared channel mean), the class signal m_c, the image's
own u_i shared by its positions, the content q_p typical of region p (what region alignment can learn),
and per-channel scales s heavy-tailed (log-normal). About half the values are 0; a tenth of the channels
never fire on an original image but do on the shuffled views (the seams of a shuffled image excite
them), as a random ResNet-50's do. Pooled features are the maps' means; RCM views move the regions' content
by their permutation (an RCM grid equal to the map's, drawn by pipeline.views), jigsaw views shuffle it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.schema import PATCH_DTYPE, SHUFFLED_KINDS, CacheConfig, CacheLayout
from pipeline.writer import CacheWriter


WHOLE_KINDS = ("original", "jigsaw", "rcm")  # the default kinds (patches only when asked for)


def synthetic_config(split: str, kinds: Sequence[str] = WHOLE_KINDS, num_views: int = 4,
                     **overrides: Any) -> dict[str, Any]:
    """The `CacheConfig` extraction would write, for synthetic features; `overrides` replace its fields."""
    views = {"kinds": list(kinds), "num_views": num_views, "jigsaw_grid": 3, "rcm_grid": 7, "rcm_k": 2}
    if "patches" in kinds:  # as extraction records them at 64 px (pipeline.views.patch_geometry)
        views.update({"patch_grid": 3, "patch_size": 16, "patch_jitter": 5})
    fields: dict[str, Any] = {
        "backbone": "synthetic",
        "image_size": 64,
        "split": split,
        "seed": 0,
        "views": views,
        "spatial": False,
        "preprocessing": "synthetic gaussian features",
        "dataset": "synthetic",
        **overrides,
    }
    return CacheConfig(**fields).as_dict()


def class_means(num_classes: int, dim: int, separation: float, seed: int = 1234) -> np.ndarray:
    """(C, D) class means shared by the train and test caches of one synthetic dataset."""
    return (np.random.default_rng(seed).standard_normal((num_classes, dim)) * separation).astype(np.float32)


def write_synthetic_cache(
    path: str | os.PathLike,
    split: str = "train",
    num_classes: int = 5,
    per_class: int = 40,
    dim: int = 64,
    num_views: int = 4,
    kinds: Sequence[str] = WHOLE_KINDS,
    separation: float = 0.35,
    noise: float = 1.0,
    view_noise: float = 0.5,
    seed: int = 0,
    first_id: int = 1,
    backbone_weights: str = "synthetic",
    class_names: list[str] | None = None,
    nonfinite: tuple[str, int] | None = None,
    complete: bool = True,
    num_rows: int | None = None,
    spatial_shape: tuple[int, int] | None = None,
    view_shared: float | None = None,
    patch_separation: float | None = None,
    features: str = "gaussian",
    **config_overrides: Any,
) -> Path:
    """Write a complete cache of `num_classes * per_class` rows (or `num_rows`, classes as even as can be).

    `view_shared=a` (0..1) draws each view as mu_c + noise * (sqrt(a) e_i + sqrt(1 - a) e'): the views keep
    the class and only a share `a` of the image's own noise, as a shuffle that destroys an image's
    nuisance but not its class would (None: the original plus `view_noise` noise).
    With "patches" in `kinds`, features/patches (N, V, 9, D) float16 holds per view nine patch features in
    a shuffled order: the patch at position p, cut from cell q = perm[p], is nu_{c,q} + noise * (sqrt(a) e_i
    + sqrt(1 - a) e'), with nu_{c,q} a class-and-cell mean of scale `patch_separation` (default
    `separation`) and a = `view_shared` (default 0.5): the patches keep the class, each cell its own way.
    `nonfinite=(kind, row)` plants a NaN in that array; `complete=False` leaves the cache unfinished.
    `spatial_shape=(h, w)` adds spatial/original and spatial/rcm: each position is its row's feature plus
    noise (float16), written in blocks so CUB-scale maps never sit in memory whole.
    `features="resnet"` writes the real-shaped features of the module docstring instead (`separation` is then
    the class signal's scale in pre-activation units; views original, jigsaw and rcm; square maps).
    """
    if features == "resnet":
        return write_resnet_like_cache(path, split, num_classes, per_class, dim, num_views, kinds, separation, seed,
                                       first_id, backbone_weights, class_names, complete, num_rows, spatial_shape,
                                       **config_overrides)
    if features != "gaussian":
        raise ValueError(f"features: expected 'gaussian' or 'resnet', found {features!r}")
    path = Path(path)
    rng = np.random.default_rng(seed)
    n = num_classes * per_class if num_rows is None else num_rows
    label = np.sort(np.arange(n) % num_classes)
    image_id = np.arange(first_id, first_id + n, dtype=np.int64)
    names = class_names or [f"{c + 1:03d}.Synthetic_Bird_{c}" for c in range(num_classes)]
    grids = {"jigsaw": 3, "rcm": 7, "patches": 3}
    perms = {k: np.argsort(rng.random((n, num_views, grids[k] ** 2)), axis=-1).astype(np.int16)
             for k in SHUFFLED_KINDS if k in kinds}
    offsets = {}
    if "patches" in kinds:  # cells of 21 px, 16 px patches (64 px images): offsets consistent with the perms
        cells = np.stack([perms["patches"] // 3, perms["patches"] % 3], -1) * 21
        offsets["patches"] = (cells + rng.integers(0, 6, size=cells.shape)).astype(np.int16)
    layout = CacheLayout(
        config=synthetic_config(split, kinds, num_views, **config_overrides),
        image_id=image_id,
        label=label,
        paths=[f"{names[c]}/img_{i}.jpg" for c, i in zip(label, image_id)],
        class_names=names,
        feature_dim=dim,
        permutations=perms,
        spatial_shape=spatial_shape,
        attrs={"backbone_weights": backbone_weights},
        offsets=offsets,
    )
    if spatial_shape is not None:
        layout.config["spatial"] = True
    means = class_means(num_classes, dim, separation)
    own = rng.standard_normal((n, dim), dtype=np.float32)
    original = means[label] + noise * own
    arrays = {"features/original": original}
    for kind in SHUFFLED_KINDS:
        if kind == "patches" and kind in kinds:
            arrays["features/patches"] = _patches(rng, perms["patches"], label, own, num_classes, dim, noise,
                                                  separation if patch_separation is None else patch_separation,
                                                  0.5 if view_shared is None else view_shared)
        elif kind in kinds:
            fresh = rng.standard_normal((n, num_views, dim), dtype=np.float32)
            if view_shared is None:
                views = original[:, None, :] + view_noise * fresh
            else:
                a = float(view_shared)
                views = means[label][:, None, :] + noise * (np.sqrt(a) * own[:, None, :] + np.sqrt(1 - a) * fresh)
            arrays[f"features/{kind}"] = views.astype(np.float32)
    if nonfinite is not None:
        kind, row = nonfinite
        arr = arrays[f"features/{kind}"]
        arr[row].flat[0] = np.nan
    writer = CacheWriter.open(path, layout, overwrite=True)
    if spatial_shape is not None:
        h, w = spatial_shape
        for lo in range(0, n, 256):
            rows = np.arange(lo, min(lo + 256, n))
            block = {k: v[rows] for k, v in arrays.items()}
            base = block["features/original"][:, None, None, :]
            block["spatial/original"] = (base + noise * rng.standard_normal((len(rows), h, w, dim), dtype=np.float32)).astype(np.float16)
            if "rcm" in kinds:
                rcm = block["features/rcm"][:, :, None, None, :]
                block["spatial/rcm"] = (rcm + noise * rng.standard_normal((len(rows), num_views, h, w, dim), dtype=np.float32)).astype(np.float16)
            writer.write(rows, block)
    else:
        writer.write(np.arange(n), arrays)
    if complete:
        writer.finish()
    else:
        writer.close()
    return path


def patch_features(rng: np.random.Generator, perms: np.ndarray, label: np.ndarray, own: np.ndarray,
                   num_classes: int, separation: float = 0.35, noise: float = 1.0, shared: float = 0.5) -> np.ndarray:
    """(N, V, G*G, D) float16 patch features for any grid's perms (N, V, G*G): the patch at position p is its
    cell perm[p]'s class mean plus noise, as write_synthetic_cache's (for callers with their own rows)."""
    return _patches(rng, perms, label, own, num_classes, own.shape[1], noise, separation, shared)


def _patches(rng: np.random.Generator, perms: np.ndarray, label: np.ndarray, own: np.ndarray, num_classes: int,
             dim: int, noise: float, separation: float, shared: float) -> np.ndarray:
    """(N, V, 9, D) float16 patch features: position p of a view is its cell perm[p]'s class mean plus noise."""
    n, v, k = perms.shape
    cell_means = np.stack([class_means(num_classes, dim, separation, seed=4321 + q) for q in range(k)], 1)  # (C, 9, D)
    fresh = rng.standard_normal((n, v, k, dim), dtype=np.float32)
    base = cell_means[label[:, None, None], perms.astype(np.int64)]  # (N, V, 9, D)
    out = base + noise * (np.sqrt(shared) * own[:, None, None, :] + np.sqrt(1 - shared) * fresh)
    return out.astype(PATCH_DTYPE)


def bayes_accuracy(features: np.ndarray, label: np.ndarray, num_classes: int, dim: int, separation: float = 0.35) -> float:
    """Accuracy of the nearest-true-mean rule (Bayes-optimal for these caches) on the given rows."""
    means = class_means(num_classes, dim, separation)
    d = ((features[:, None, :] - means[None]) ** 2).sum(-1)
    return float((d.argmin(1) == label).mean())


RESNET_GRID = 3  # positions per side behind the pooled features when a real-shaped cache has no maps


def resnet_like(num_classes: int, dim: int, separation: float, positions: int, seed: int = 1234) -> dict[str, np.ndarray]:
    """The parameters a real-shaped dataset's train and test caches share: per-channel scale s (log-normal),
    shared offset b (a tenth of the channels far below 0: they never fire on an original image), class means
    m_c and region contents q_p, all in pre-activation units."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(0.0, 2.0, dim)  # channels that fire almost always, and channels that rarely do
    silent = rng.random(dim) < 0.1
    offset[silent] = -6.0
    return {"scale": np.exp(rng.normal(0.0, 1.0, dim)).astype(np.float32), "offset": offset.astype(np.float32),
            "silent": silent, "means": (rng.standard_normal((num_classes, dim)) * separation).astype(np.float32),
            "regions": (rng.standard_normal((positions, dim)) * 0.5).astype(np.float32)}


def _fire(pre: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    return p["scale"] * np.maximum(pre, 0.0)


def _resnet_block(rng: np.random.Generator, p: dict[str, np.ndarray], label: np.ndarray, perms: dict[str, np.ndarray],
                  rows: np.ndarray, grid: int) -> dict[str, np.ndarray]:
    """(maps (n, P, D), rcm maps (n, V, P, D), jigsaw pooled (n, V, D)) of `rows`, float32, P = grid**2."""
    n, dim = len(rows), len(p["offset"])
    own = rng.standard_normal((n, 1, dim), dtype=np.float32) * 0.5  # the image's own, at every position
    content = p["offset"] + p["means"][label[rows]][:, None, :] + own + p["regions"][None]  # (n, P, D)
    noise = lambda *shape: rng.standard_normal(shape, dtype=np.float32)  # noqa: E731
    out = {"original": _fire(content + noise(n, grid * grid, dim), p)}

    def shuffled(moved: np.ndarray) -> np.ndarray:  # (n, V, P, D) contents of a shuffled view; its seams fire
        seams = (rng.random((*moved.shape[:3], 1)) < 0.3) * p["silent"] * 7.0
        return _fire(moved + seams + noise(*moved.shape), p)

    if "rcm" in perms:  # region perm[q] at position q
        out["rcm"] = shuffled(np.take_along_axis(content[:, None], perms["rcm"][rows][..., None].astype(np.int64), 2))
    if "jigsaw" in perms:  # pooled only: a mean over positions does not depend on where each content went
        out["jigsaw"] = shuffled(np.repeat(content[:, None], perms["jigsaw"].shape[1], 1)).mean(2)
    return out


def write_resnet_like_cache(path: str | os.PathLike, split: str, num_classes: int, per_class: int, dim: int,
                            num_views: int, kinds: Sequence[str], separation: float, seed: int, first_id: int,
                            backbone_weights: str, class_names: list[str] | None, complete: bool,
                            num_rows: int | None, spatial_shape: tuple[int, int] | None, **config_overrides: Any) -> Path:
    """write_synthetic_cache(features="resnet"): the module docstring's real-shaped features."""
    from pipeline.views import make_permutations

    if "patches" in kinds:
        raise ValueError("features='resnet' writes the original, jigsaw and rcm views (not patches)")
    if spatial_shape is not None and spatial_shape[0] != spatial_shape[1]:
        raise ValueError(f"features='resnet' writes square maps, found {spatial_shape}")
    grid = spatial_shape[0] if spatial_shape is not None else RESNET_GRID
    path = Path(path)
    rng = np.random.default_rng(seed)
    n = num_classes * per_class if num_rows is None else num_rows
    label = np.sort(np.arange(n) % num_classes)
    image_id = np.arange(first_id, first_id + n, dtype=np.int64)
    names = class_names or [f"{c + 1:03d}.Synthetic_Bird_{c}" for c in range(num_classes)]
    perms = {"rcm": make_permutations("rcm", seed, image_id, num_views, grid, 1) if "rcm" in kinds else None,
             "jigsaw": make_permutations("jigsaw", seed, image_id, num_views, 3) if "jigsaw" in kinds else None}
    perms = {k: v.astype(np.int16) for k, v in perms.items() if v is not None}
    config = synthetic_config(split, kinds, num_views, preprocessing="synthetic real-shaped (post-ReLU) features",
                              **config_overrides)
    config["views"].update({"rcm_grid": grid, "rcm_k": 1})
    layout = CacheLayout(config=config, image_id=image_id, label=label,
                         paths=[f"{names[c]}/img_{i}.jpg" for c, i in zip(label, image_id)], class_names=names,
                         feature_dim=dim, permutations=perms, spatial_shape=spatial_shape,
                         attrs={"backbone_weights": backbone_weights})
    if spatial_shape is not None:
        layout.config["spatial"] = True
    params = resnet_like(num_classes, dim, separation, grid * grid)
    writer = CacheWriter.open(path, layout, overwrite=True)
    for lo in range(0, n, 256):
        rows = np.arange(lo, min(lo + 256, n))
        maps = _resnet_block(rng, params, label, perms, rows, grid)
        block = {"features/original": maps["original"].mean(1)}
        if "rcm" in maps:
            block["features/rcm"] = maps["rcm"].mean(2)
        if "jigsaw" in maps:
            block["features/jigsaw"] = maps["jigsaw"]
        if spatial_shape is not None:
            block["spatial/original"] = maps["original"].reshape(len(rows), grid, grid, dim).astype(np.float16)
            if "rcm" in maps:
                block["spatial/rcm"] = maps["rcm"].reshape(len(rows), num_views, grid, grid, dim).astype(np.float16)
        writer.write(rows, block)
    if complete:
        writer.finish()
    else:
        writer.close()
    return path
