"""A torch backbone's image loader, free of TensorFlow and torch: decode with PIL to RGB (grayscale, palette
and CMYK images converted; the first frame of an animation), resize to S x S (bilinear with antialiasing,
aspect ratio not kept, as TF-Hub's contract in `extract.inputs`), uint8 (S, S, 3).

The views are cut from this image (`extract.torch_views`), so their tiles and crops are the same pixels
`pipeline.views.apply_permutation` and `cut_patches` give on it.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError

# the cache config's `preprocessing` starts with this; the backbone adds its normalisation
PIL_PREPROCESSING = "decode_rgb_pil+resize_bilinear_antialias_pil+uint8+scale_0_1"


class UnreadableImage(PipelineError):
    """An image PIL cannot decode: one line naming the file (and, where the caller knows it, its image id)."""

    def __init__(self, path: str, reason: str, image_id: int | None = None):
        where = f" (image_id {image_id})" if image_id is not None else ""
        super().__init__(f"{path}: cannot decode image{where}: {reason}")
        self.path, self.reason = path, reason


def load_rgb(path: str, image_size: int) -> np.ndarray:
    """(S, S, 3) uint8; an image PIL cannot read raises UnreadableImage."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.seek(0)
            rgb = image.convert("RGB")
            if rgb.size != (image_size, image_size):
                rgb = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImage(path, _first_line(e)) from None


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
