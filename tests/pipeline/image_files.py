"""Tiny image files of every mode the decoder contract covers (pipeline.decode), each with the RGB picture it must
decode to: the reference of the modes x loaders matrix (tests/pipeline/test_decode.py, tests/extract/test_decode_tf.py)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

H, W = 12, 16


def reference() -> np.ndarray:
    """(H, W, 3) uint8 with few distinct colours (a palette holds them exactly)."""
    y, x = np.mgrid[0:H, 0:W]
    r = (x * 16).astype(np.uint8)
    g = (y * 20).astype(np.uint8)
    b = ((x + y) % 4 * 60).astype(np.uint8)
    return np.stack([r, g, b], -1)


def gray() -> np.ndarray:
    return reference()[..., 0]


def write_png(path: Path, array: np.ndarray, bit_depth: int, color_type: int, width: int | None = None,
              height: int | None = None) -> Path:
    """A PNG written by hand: 16-bit RGB (which PIL cannot write), or a huge all-zero header with tiny data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    if array is None:  # a huge image of zeros, compressed to a few kB
        channels = {0: 1, 2: 3}[color_type]
        row = b"\0" + bytes(-(-width * channels * bit_depth // 8))
        raw = row * height
    else:
        height, width = array.shape[:2]
        data = array.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1)
        raw = b"".join(b"\0" + r.tobytes() for r in data)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                     + chunk(b"IEND", b""))
    return path


def make_matrix(folder: Path) -> dict[str, tuple[Path, np.ndarray, int]]:
    """name -> (file, the RGB picture it must decode to, 0 for exact or a lossy file's mean error allowed, in levels)."""
    from PIL import Image

    ref, g = reference(), gray()
    g3 = np.repeat(g[..., None], 3, -1)
    binary = np.where(g > 127, 255, 0).astype(np.uint8)
    alpha = np.full((H, W), 128, np.uint8)
    out: dict[str, tuple[Path, np.ndarray, int]] = {}

    def save(name: str, image, expected: np.ndarray, tol: int = 0, **kwargs) -> None:
        path = folder / name
        image.save(path, **kwargs)
        out[name] = (path, expected, tol)

    rgb = Image.fromarray(ref)
    for ext in ("png", "tif", "bmp", "webp", "gif"):
        save(f"rgb.{ext}", rgb if ext != "gif" else rgb.quantize(256), ref, **({"lossless": True} if ext == "webp" else {}))
    save("rgb.jpg", rgb, ref, tol=6, quality=95, subsampling=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation "rotate 90 CW": ignored by the contract, the pixels as stored
    save("rgb_exif6.jpg", rgb, ref, tol=6, quality=95, subsampling=0, exif=exif.tobytes())
    save("rgb_exif6.png", rgb, ref, exif=exif.tobytes())
    save("l.png", Image.fromarray(g), g3)
    save("l.tif", Image.fromarray(g), g3)
    save("l.jpg", Image.fromarray(g), g3, tol=6, quality=95)
    save("1.png", Image.fromarray(binary).convert("1"), np.repeat(binary[..., None], 3, -1))
    save("1.tif", Image.fromarray(binary).convert("1"), np.repeat(binary[..., None], 3, -1))
    save("1.bmp", Image.fromarray(binary).convert("1"), np.repeat(binary[..., None], 3, -1))
    save("la.png", Image.fromarray(np.stack([g, alpha], -1), "LA"), g3)
    save("rgba.png", Image.fromarray(np.dstack([ref, alpha]), "RGBA"), ref)
    save("rgba.tif", Image.fromarray(np.dstack([ref, alpha]), "RGBA"), ref)
    save("rgba.webp", Image.fromarray(np.dstack([ref, alpha]), "RGBA"), ref, lossless=True, exact=True)
    palette = rgb.quantize(256)
    save("p.png", palette, ref)
    save("p.bmp", palette, ref)
    save("p_transparent.png", palette, ref, transparency=0)
    save("cmyk.tif", rgb.convert("CMYK"), ref)
    save("cmyk.jpg", rgb.convert("CMYK"), ref, tol=6, quality=95, subsampling=0)
    save("i16.png", Image.fromarray(g.astype(np.uint16) * 257), g3)
    save("i16.tif", Image.fromarray(g.astype(np.uint16) * 257), g3)
    save("i32.tif", Image.fromarray(np.rint(g.astype(np.float64) * ((2**31 - 1) / 255)).astype(np.int32)), g3)
    save("f.tif", Image.fromarray(g.astype(np.float32) / 255), g3)
    out["rgb16.png"] = (write_png(folder / "rgb16.png", ref.astype(np.uint16) * 257, 16, 2), ref, 0)
    out["l16_hand.png"] = (write_png(folder / "l16_hand.png", g.astype(np.uint16) * 257, 16, 0), g3, 0)
    return out


def make_refusals(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words its one-line refusal must hold)."""
    from PIL import Image

    g = gray()
    out = {}
    path = folder / "f_0_255.tif"
    Image.fromarray(g.astype(np.float32)).save(path)  # float samples 0..255: ambiguous, refused
    out["f_0_255.tif"] = (path, "read as [0, 1]")
    path = folder / "f_nan.tif"
    Image.fromarray(np.full((H, W), np.nan, np.float32)).save(path)
    out["f_nan.tif"] = (path, "not all finite")
    path = folder / "i32_negative.tif"
    Image.fromarray(np.full((H, W), -5, np.int32)).save(path)
    out["i32_negative.tif"] = (path, "negative samples")
    path = folder / "not_an_image.png"
    path.write_bytes(b"hello, not a picture")
    out["not_an_image.png"] = (path, "cannot decode image")
    out["huge.png"] = (write_png(folder / "huge.png", None, 1, 0, width=10_000, height=9_000),
                       "above the limit of 89,478,485 pixels")
    out["huge.jpg"] = (huge_jpeg(folder / "huge.jpg", 17_000, 11_000), "187,000,000 pixels (17000 x 11000), above the "
                                                                        "limit of 89,478,485 pixels")
    out["huge_bomb.png"] = (write_png(folder / "huge_bomb.png", None, 1, 0, width=20_000, height=10_000),
                            "above the limit of 89,478,485 pixels")
    return out


def huge_jpeg(path: Path, width: int, height: int) -> Path:
    """A real small JPEG whose frame header (SOF0) says width x height: what a 187-megapixel photo's header says,
    without its 187 million pixels (the contract refuses it from the header)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(gray()).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path
