"""The synthetic pictures every sample layout draws: per class, coloured parts on a LAYOUT x LAYOUT arrangement,
so that shuffling regions changes the image and the class stays recognisable. Not birds."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

LAYOUT = 4  # parts sit on a LAYOUT x LAYOUT arrangement; each class picks its own cells and colours


def class_design(rng: np.random.Generator) -> list[tuple[int, int, tuple[int, int, int], str]]:
    cells = rng.choice(LAYOUT * LAYOUT, size=rng.integers(3, 6), replace=False)
    shapes = ("ellipse", "rectangle")
    return [(int(c) // LAYOUT, int(c) % LAYOUT, tuple(int(x) for x in rng.integers(30, 256, 3)),
             shapes[int(rng.integers(2))]) for c in cells]


def draw_picture(rng: np.random.Generator, design: list, width: int, height: int) -> Image.Image:
    bg = rng.integers(0, 80, 3)
    noise = rng.normal(0, 12, (height, width, 3))
    pixels = np.clip(bg + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    cw, ch = width / LAYOUT, height / LAYOUT
    for row, col, colour, shape in design:
        jx, jy = rng.uniform(-0.15, 0.15, 2)
        scale = rng.uniform(0.6, 0.95)
        cx, cy = (col + 0.5 + jx) * cw, (row + 0.5 + jy) * ch
        box = [cx - scale * cw / 2, cy - scale * ch / 2, cx + scale * cw / 2, cy + scale * ch / 2]
        getattr(draw, shape)(box, fill=colour)
    return image
