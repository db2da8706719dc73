"""What an extraction computes, known before TensorFlow loads: the views asked for and the cache's config.

TensorFlow-free, so a launcher can tell a finished shard from the options alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.datasets import Dataset, cache_source
from pipeline.schema import CacheConfig, dataset_fingerprint, inputs_per_image

PREPROCESSING = "decode_rgb+resize_bilinear_antialias+scale_0_1"


@dataclass(frozen=True)
class ViewSpec:
    kinds: tuple[str, ...]  # subset of FEATURE_KINDS, in that order
    num_views: int
    jigsaw_grid: int
    rcm_grid: int
    rcm_k: float

    @property
    def per_image(self) -> int:
        """Backbone inputs per image."""
        return inputs_per_image(self.kinds, self.num_views)

    def as_config(self) -> dict:
        return {"kinds": list(self.kinds), "num_views": self.num_views, "jigsaw_grid": self.jigsaw_grid,
                "rcm_grid": self.rcm_grid, "rcm_k": float(self.rcm_k)}  # the CLI gives a float; 2 and 2.0 are one config


def extraction_config(data: Dataset, spec: ViewSpec, handle: str, image_size: int, seed: int, spatial: bool,
                      precision: str = "fp32") -> dict:
    """Everything that determines the cached arrays (hashed into config_hash): a `CacheConfig`."""
    return CacheConfig(backbone=handle, image_size=image_size, split=data.split, seed=seed, views=spec.as_config(),
                       spatial=spatial, preprocessing=PREPROCESSING, precision=precision,
                       dataset=dataset_fingerprint(data.image_id, data.label, data.path),
                       source=cache_source(data)).as_dict()
