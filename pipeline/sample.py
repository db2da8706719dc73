"""Synthetic sample dataset in the exact CUB-200-2011 layout (`make-sample-dataset`).

Each class has its own spatial arrangement of coloured parts on a 4x4 layout, so shuffling regions
really changes the image; images vary in size and aspect ratio and at least one is grayscale.
Deterministic from the seed. The pictures are not birds: accuracies on them say nothing about CUB.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .datasets.pictures import class_design, draw_picture
from .errors import PipelineError

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
    tables = _draw_cub_images(root, rng, names, images_per_class, min_side, max_side)
    tables["classes.txt"] = [f"{c + 1} {n}" for c, n in enumerate(names)]
    _write_tables(root, tables, rng, shuffle_metadata)
    (root / "README").write_text(
        f"Synthetic sample in the CUB-200-2011 layout: {classes} classes x {images_per_class} images, "
        f"seed {seed}. Not birds; made by make-sample-dataset.\n"
    )
    return root


def _draw_cub_images(root: Path, rng: np.random.Generator, names: list[str], images_per_class: int,
                     min_side: int, max_side: int) -> dict[str, list[str]]:
    """Save every class's pictures under images/ (half of each class training data, one grayscale image);
    return the lines of images.txt, image_class_labels.txt, train_test_split.txt and bounding_boxes.txt."""
    designs = [class_design(rng) for _ in names]
    tables: dict[str, list[str]] = {f: [] for f in ("images.txt", "image_class_labels.txt",
                                                     "train_test_split.txt", "bounding_boxes.txt")}
    image_id, gray_done = 0, False
    for c, name in enumerate(names):
        (root / "images" / name).mkdir()
        train_flags = np.zeros(images_per_class, dtype=int)
        train_flags[rng.permutation(images_per_class)[: images_per_class // 2]] = 1
        for m in range(images_per_class):
            image_id += 1
            width, height = (int(x) for x in rng.integers(min_side, max_side + 1, 2))
            image = draw_picture(rng, designs[c], width, height)
            if not gray_done and m == 1:  # one grayscale image, as CUB has a few
                image, gray_done = image.convert("L"), True
            rel = f"{name}/Sample_{c + 1:03d}_{m + 1:04d}.jpg"
            image.save(root / "images" / rel, quality=90)
            tables["images.txt"].append(f"{image_id} {rel}")
            tables["image_class_labels.txt"].append(f"{image_id} {c + 1}")
            tables["train_test_split.txt"].append(f"{image_id} {train_flags[m]}")
            tables["bounding_boxes.txt"].append(
                f"{image_id} {width * 0.1:.1f} {height * 0.1:.1f} {width * 0.8:.1f} {height * 0.8:.1f}")
    return tables


def _write_tables(root: Path, tables: dict[str, list[str]], rng: np.random.Generator, shuffle: bool) -> None:
    """The metadata files; with `shuffle`, each lists its ids in its own order (classes.txt excepted)."""
    for fname in ("images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt",
                  "bounding_boxes.txt"):
        lines = tables[fname]
        if shuffle and fname != "classes.txt":
            lines = [lines[i] for i in rng.permutation(len(lines))]
        (root / fname).write_text("\n".join(lines) + "\n")
