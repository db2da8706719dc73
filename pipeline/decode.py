"""The one image decoder contract both loaders keep (PIL: `extract.images`; TensorFlow: `extract.inputs`): an image
file -> (H, W, 3) uint8 RGB, the same picture for every mode, or one `UnreadableImage` line naming the file.

The rules (docs/datasets.md, "Decoding images"; recorded in every cache config's `preprocessing` as `DECODE_RULE`):
- formats: JPEG, PNG, TIFF, GIF, WebP, BMP (`IMAGE_SUFFIXES`); the first frame of an animation;
- 8-bit modes (1, L, P, RGB, RGBA, LA, PA, CMYK, YCbCr) are converted to RGB by PIL; alpha is dropped, not
  composited (as `tf.io.decode_*(channels=3)` drops it);
- 16-bit samples (I;16 and its byte orders, 16-bit PNG and TIFF) are scaled to 8 bits, v / 257 rounded;
- 32-bit integer samples (mode I) are scaled by their stored type's range (0..2^16-1 for a 16-bit PNG read as I,
  0..2^31-1 for a signed 32-bit TIFF, 0..2^32-1 for an unsigned one); a negative sample is refused;
- float samples (mode F) are read as [0, 1] and scaled by 255; values outside [0, 1] (or not finite) are refused;
- EXIF orientation is IGNORED: the picture is the pixels as stored, as tf.io and torchvision's loaders read them and
  as CUB's boxes were drawn;
- an image of more than `MAX_PIXELS` pixels is refused with a line naming the file and the limit (PIL's own
  decompression-bomb warning is never printed).

TensorFlow decodes a plain JPEG (RGB or grayscale, `Probe.tf_native`) itself, with libjpeg's accurate integer
DCT like PIL; every other file goes through `decode_rgb` here. PIL is imported lazily; no TensorFlow or torch.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import PipelineError

MAX_PIXELS = 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS: above it PIL warns, TensorFlow fails on a large JPEG
DECODE_RULE = "decode_rgb8(exif=ignored,alpha=dropped,16bit=v/257,float=0..1)"
NOT_AN_IMAGE = "not an image file of a known format (JPEG, PNG, TIFF, GIF, WebP, BMP)"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S")
_TF_NATIVE = {("JPEG", "RGB"), ("JPEG", "L")}


class UnreadableImage(PipelineError):
    """An image that does not decode to the contract's picture: one line naming the file (and, where the caller
    knows it, its image id)."""

    def __init__(self, path: str, reason: str, image_id: int | None = None):
        where = f" (image_id {image_id})" if image_id is not None else ""
        super().__init__(f"{path}: cannot decode image{where}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass(frozen=True)
class Probe:
    """What a file's header says (PIL reads only the header): format, mode and size; format None when PIL cannot
    identify it (the decoder then gives the refusal)."""

    format: str | None
    mode: str | None
    width: int = 0
    height: int = 0

    @property
    def tf_native(self) -> bool:
        """Whether TensorFlow's own JPEG decoder gives the contract's picture (a plain RGB or grayscale JPEG)."""
        return (self.format, self.mode) in _TF_NATIVE and self.width * self.height <= MAX_PIXELS


def probe(path: str) -> Probe:
    """The header of `path`; Probe(None, None) when PIL cannot read it."""
    Image = _pil()
    try:
        with Image.open(path) as image:
            return Probe(image.format, image.mode, *image.size)
    except Exception:  # noqa: BLE001 - any failure (a bomb too) is the decoder's to report, with its reason
        return Probe(None, None)


def check_size(path: str, width: int, height: int) -> None:
    """An UnreadableImage naming the file and the limit when the image has more than MAX_PIXELS pixels."""
    if width * height > MAX_PIXELS:
        raise UnreadableImage(path, f"{width * height:,} pixels ({width} x {height}), above the limit of "
                                    f"{MAX_PIXELS:,} pixels per image; downscale it")


def decode_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8: the contract's picture of `path`, or an UnreadableImage naming it."""
    return np.asarray(open_rgb(path), dtype=np.uint8)


def open_rgb(path: str):
    """The contract's picture of `path` as a PIL RGB image (what the PIL loader resizes)."""
    Image = _pil()
    try:
        with Image.open(path) as image:
            check_size(path, *image.size)
            image.seek(0)
            image.load()
            return to_rgb(image, path)
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as e:  # PIL's own limit, were it set again: the same line
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels, " if found else ""
        raise UnreadableImage(path, f"{size}above the limit of {MAX_PIXELS:,} pixels per image; downscale it") from None
    except Image.UnidentifiedImageError:  # PIL's text repeats the path
        raise UnreadableImage(path, NOT_AN_IMAGE) from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise UnreadableImage(path, _first_line(e)) from None


def to_rgb(image, path: str = "image"):
    """A loaded PIL image of any mode -> the contract's RGB image (see the module's rules)."""
    Image = _pil()
    mode = image.mode
    if mode in _SIXTEEN_BIT:
        gray = np.asarray(image).astype(np.float64) / 257.0
        return Image.fromarray(_round8(gray)).convert("RGB")
    if mode == "I":
        values = np.asarray(image).astype(np.float64)
        top = _integer_range(image)
        if top is None:
            raise UnreadableImage(path, f"32-bit integer samples from {image.format or 'an unknown format'} "
                                        "have no known range; save the image with 8 or 16 bits per sample")
        if values.size and values.min() < 0:
            raise UnreadableImage(path, f"negative samples ({values.min():.0f}) in a 32-bit integer image; "
                                        "save it with unsigned 8 or 16 bits per sample")
        return Image.fromarray(_round8(values * (255.0 / top))).convert("RGB")
    if mode == "F":
        values = np.asarray(image).astype(np.float64)
        if values.size and (not np.isfinite(values).all() or values.min() < 0 or values.max() > 1):
            low, high = (np.nanmin(values), np.nanmax(values)) if np.isfinite(values).any() else (np.nan, np.nan)
            raise UnreadableImage(path, f"float samples from {low:g} to {high:g}{'' if np.isfinite(values).all() else ' (not all finite)'}"
                                        "; float images are read as [0, 1]: rescale it, or save it with 8 bits")
        return Image.fromarray(_round8(values * 255.0)).convert("RGB")
    if mode == "1":
        return image.convert("L").convert("RGB")
    if mode == "RGB":
        return image.copy() if image.readonly else image
    try:
        return image.convert("RGB")
    except ValueError:  # e.g. PA, LAB: through RGBA where PIL has no direct conversion
        try:
            return image.convert("RGBA").convert("RGB")
        except ValueError as e:
            raise UnreadableImage(path, f"mode {mode} has no RGB conversion ({_first_line(e)})") from None


def _integer_range(image) -> float | None:
    """The largest value of a mode-I image's stored sample type, or None when the file does not say."""
    if image.format == "PNG":
        return 65535.0
    tags = getattr(image, "tag_v2", None)
    if tags is None:
        return None
    bits = tags.get(258, 32)
    bits = bits[0] if isinstance(bits, tuple) else bits
    signed = (tags.get(339, 1)[0] if isinstance(tags.get(339, 1), tuple) else tags.get(339, 1)) == 2
    return float(2 ** (int(bits) - signed) - 1)


def _round8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _pil():
    """PIL's Image module, set once for the process: its decompression-bomb check off (the contract checks
    MAX_PIXELS itself, before decoding, and says so in one line naming the file, where PIL would print a raw warning
    or raise above twice its limit) and its palette transparency note silenced (alpha is dropped by rule)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    warnings.filterwarnings("ignore", message="Palette images with Transparency", category=UserWarning)
    return Image


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
