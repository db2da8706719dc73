"""What an extraction computes, known before TensorFlow loads: the views asked for and the cache's config.

TensorFlow-free, so a launcher can tell a finished shard from the options alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.datasets import Dataset, cache_source
from pipeline.decode import DECODE_RULE
from pipeline.schema import CacheConfig, dataset_fingerprint, inputs_per_image
from pipeline.views import DEFAULT_PATCH_GRID, patch_geometry

PREPROCESSING = f"{DECODE_RULE}+resize_bilinear_antialias+scale_0_1"  # TF-Hub's; a torch backbone's: extract.images


@dataclass(frozen=True)
class ViewSpec:
    kinds: tuple[str, ...]  # subset of FEATURE_KINDS, in that order
    num_views: int
    jigsaw_grid: int
    rcm_grid: int
    rcm_k: float
    patch_grid: int = DEFAULT_PATCH_GRID  # "patches": grid x grid cells, one patch crop each
    patch_size: int | None = None  # pixels; None: VISSL's 64/85 of a cell (pipeline.views.patch_geometry)
    patch_jitter: int | None = None  # pixels; None: cell - patch

    @property
    def per_image(self) -> int:
        """Backbone inputs per image (each patch crop counted as one, small, input)."""
        return inputs_per_image(self.kinds, self.num_views, self.patch_grid)

    @property
    def whole_per_image(self) -> int:
        """Backbone inputs at the full image size per image: the original and the whole-image shuffled views."""
        return inputs_per_image([k for k in self.kinds if k != "patches"], self.num_views)

    def patch_geometry(self, image_size: int) -> tuple[int, int, int]:
        """(cell, patch, jitter) in pixels; ValueError naming the option when they do not fit."""
        return patch_geometry(image_size, self.patch_grid, self.patch_size, self.patch_jitter)

    def as_config(self, image_size: int | None = None) -> dict:
        config = {"kinds": list(self.kinds), "num_views": self.num_views, "jigsaw_grid": self.jigsaw_grid,
                  "rcm_grid": self.rcm_grid, "rcm_k": float(self.rcm_k)}  # the CLI gives a float; 2 and 2.0 are one config
        if "patches" in self.kinds and image_size is not None:  # only then: other caches keep their config_hash
            _, patch, jitter = self.patch_geometry(image_size)
            config.update({"patch_grid": self.patch_grid, "patch_size": patch, "patch_jitter": jitter})
        return config


def extraction_config(data: Dataset, spec: ViewSpec, handle: str, image_size: int, seed: int, spatial: bool,
                      precision: str = "fp32", preprocessing: str = PREPROCESSING, model: dict | None = None) -> dict:
    """Everything that determines the cached arrays (hashed into config_hash): a `CacheConfig`. `preprocessing`
    and `model` are the backbone's (a torch backbone's own, `extract.torch_backbone`; TF-Hub's contract and no
    model record otherwise)."""
    return CacheConfig(backbone=handle, image_size=image_size, split=data.split, seed=seed, views=spec.as_config(image_size),
                       spatial=spatial, preprocessing=preprocessing, precision=precision,
                       dataset=dataset_fingerprint(data.image_id, data.label, data.path),
                       source=cache_source(data), model=model).as_dict()
