"""Figures embedded in a page: a PNG as base64, shrunk to a thumbnail's width (the calibration's figures, the
report's)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

THUMB_WIDTH = 520  # pixels of an embedded thumbnail (shown at about half a column)


def png_data(path: Path, width: int | None = None) -> str:
    """A PNG file as base64, shrunk to `width` pixels when it is wider."""
    data = Path(path).read_bytes()
    if width is not None:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            if im.width > width:
                small = im.convert("RGB").resize((width, round(im.height * width / im.width)), Image.LANCZOS)
                buffer = io.BytesIO()
                small.quantize(colors=64).save(buffer, format="PNG", optimize=True)  # a figure has few colours
                data = buffer.getvalue()
    return base64.b64encode(data).decode()
