"""Synthetic sample dataset in the exact CUB-200-2011 layout (`make-sample-dataset`).

Each class has its own spatial arrangement of coloured parts on a 4x4 layout, so shuffling regions
really changes the image; images vary in size and aspect ratio and at least one is grayscale.
Deterministic from the seed. The pictures are not birds: accuracies on them say nothing about CUB.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw

from .errors import PipelineError, fail

LAYOUT = 4  # parts sit on a LAYOUT x LAYOUT arrangement; each class picks its own cells and colours


def _class_design(rng: np.random.Generator) -> list[tuple[int, int, tuple[int, int, int], str]]:
    cells = rng.choice(LAYOUT * LAYOUT, size=rng.integers(3, 6), replace=False)
    shapes = ("ellipse", "rectangle")
    return [(int(c) // LAYOUT, int(c) % LAYOUT, tuple(int(x) for x in rng.integers(30, 256, 3)),
             shapes[int(rng.integers(2))]) for c in cells]


def _draw(rng: np.random.Generator, design: list, width: int, height: int) -> Image.Image:
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


def make_sample_dataset(
    out: str | Path,
    classes: int = 10,
    images_per_class: int = 12,
    seed: int = 0,
    min_side: int = 96,
    max_side: int = 200,
    shuffle_metadata: bool = False,
    layout: str = "cub",
) -> Path:
    """Write `<out>/CUB_200_2011/` with images and every metadata file; return that directory.

    Half of each class (rounded down) is training data. With shuffle_metadata, each metadata file
    lists its ids in a different order (to test that readers join on image_id). Another `layout`
    (aircraft, cars, dogs, flowers102, nabirds, folder) writes that dataset's layout instead
    (pipeline.datasets.synthetic).
    """
    if classes < 1 or images_per_class < 2:
        raise PipelineError(f"expected at least 1 class and 2 images per class, found {classes} x {images_per_class}")
    if layout != "cub":
        from .datasets.synthetic import make_sample_layout

        return make_sample_layout(layout, out, classes, images_per_class, seed, min_side, max_side, shuffle_metadata)
    rng = np.random.default_rng(seed)
    root = Path(out) / "CUB_200_2011"
    if root.exists():
        shutil.rmtree(root)
    (root / "images").mkdir(parents=True)
    names = [f"{c + 1:03d}.Sample_species_{c + 1}" for c in range(classes)]
    designs = [_class_design(rng) for _ in range(classes)]
    images, labels, split, boxes = [], [], [], []
    image_id = 0
    gray_done = False
    for c, name in enumerate(names):
        (root / "images" / name).mkdir()
        train_flags = np.zeros(images_per_class, dtype=int)
        train_flags[rng.permutation(images_per_class)[: images_per_class // 2]] = 1
        for m in range(images_per_class):
            image_id += 1
            width, height = (int(x) for x in rng.integers(min_side, max_side + 1, 2))
            image = _draw(rng, designs[c], width, height)
            if not gray_done and m == 1:  # one grayscale image, as CUB has a few
                image, gray_done = image.convert("L"), True
            rel = f"{name}/Sample_{c + 1:03d}_{m + 1:04d}.jpg"
            image.save(root / "images" / rel, quality=90)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c + 1}")
            split.append(f"{image_id} {train_flags[m]}")
            boxes.append(f"{image_id} {width * 0.1:.1f} {height * 0.1:.1f} {width * 0.8:.1f} {height * 0.8:.1f}")
    tables = {
        "images.txt": images,
        "classes.txt": [f"{c + 1} {n}" for c, n in enumerate(names)],
        "image_class_labels.txt": labels,
        "train_test_split.txt": split,
        "bounding_boxes.txt": boxes,
    }
    for fname, lines in tables.items():
        if shuffle_metadata and fname != "classes.txt":
            lines = [lines[i] for i in rng.permutation(len(lines))]
        (root / fname).write_text("\n".join(lines) + "\n")
    (root / "README").write_text(
        f"Synthetic sample in the CUB-200-2011 layout: {classes} classes x {images_per_class} images, "
        f"seed {seed}. Not birds; made by make-sample-dataset.\n"
    )
    return root


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", default="data/sample", show_default=True,
              help="Parent directory; writes OUT/CUB_200_2011/ (or the layout's own directory).")
@click.option("--classes", default=10, show_default=True, help="Number of classes C.")
@click.option("--images-per-class", default=12, show_default=True, help="Images per class M (half train, half test).")
@click.option("--seed", default=0, show_default=True, help="Everything is deterministic from this seed.")
@click.option("--layout", default="cub", show_default=True,
              type=click.Choice(["cub", "aircraft", "cars", "dogs", "flowers102", "nabirds", "folder"]),
              help="Which dataset's files and formats to write (aircraft, flowers102 and folder also get a val split).")
def main(out: str, classes: int, images_per_class: int, seed: int, layout: str) -> None:
    """Write a synthetic dataset in the exact CUB-200-2011 layout (or another dataset's, --layout)."""
    try:
        root = make_sample_dataset(out, classes, images_per_class, seed, layout=layout)
    except PipelineError as e:
        fail(e)
    print(f"wrote {classes * images_per_class} images in {classes} classes to {root}")
