"""A torch backbone's image loader, free of TensorFlow and torch: decode to RGB by the one decoder contract
(`pipeline.decode`: every mode, 16-bit and float samples scaled, EXIF orientation ignored), resize to S x S (bilinear with antialiasing,
aspect ratio not kept, as TF-Hub's contract in `extract.inputs`), uint8 (S, S, 3).

The views are cut from this image (`extract.torch_views`), so their tiles and crops are the same pixels
`pipeline.views.apply_permutation` and `cut_patches` give on it.
"""

from __future__ import annotations

import numpy as np

from pipeline.decode import DECODE_RULE, UnreadableImage, open_rgb

__all__ = ["PIL_PREPROCESSING", "UnreadableImage", "load_rgb"]

# the cache config's `preprocessing` starts with this; the backbone adds its normalisation
PIL_PREPROCESSING = f"{DECODE_RULE}+resize_bilinear_antialias_pil+uint8+scale_0_1"


def load_rgb(path: str, image_size: int) -> np.ndarray:
    """(S, S, 3) uint8 of the contract's picture (`pipeline.decode`); an image that does not decode raises
    UnreadableImage naming the file."""
    from PIL import Image

    rgb = open_rgb(path)
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)
