"""Real images offline: scikit-learn's handwritten digits as an image folder (`make-sample-dataset --layout digits`).

These are REAL scans, not synthetic pictures: `sklearn.datasets.load_digits` ships 1,797 8x8 grey images of
handwritten digits (10 classes, 0-9; pixel values 0..16) in the scikit-learn wheel, a copy of the test set of
the UCI "Optical Recognition of Handwritten Digits" data (E. Alpaydin, C. Kaynak, 1998; scikit-learn's
description names that source and states no licence of its own). Nothing is downloaded.

The folder written is `OUT/digits/<train|test>/<digit>/digit_<index>.png` (pipeline.datasets.folder reads it;
there is no val/ split, so a study draws its validation rows from train): each scan scaled from 0..16 to
0..255 and upsampled to SIZE x SIZE grey PNG with bilinear interpolation (PIL), a stratified train/test split
of `test_fraction` (scikit-learn's `train_test_split`, seeded; 30% of the full set gives 1,257 train / 540
test), optionally after a seeded per-class subsample. `<index>` is the scan's row in `load_digits()`.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import numpy as np

from ..errors import PipelineError

DIRNAME = "digits"
CLASSES = 10
SOURCE = ("real images (not synthetic): scikit-learn's load_digits, 8x8 scans of handwritten digits, a copy of "
          "the test set of the UCI Optical Recognition of Handwritten Digits data (Alpaydin & Kaynak, 1998)")


def _subsample(labels: np.ndarray, per_class: int | None, classes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the first `classes` digits, `per_class` of each drawn at random (all when None), sorted."""
    keep = []
    for c in range(classes):
        members = np.flatnonzero(labels == c)
        if per_class is not None:
            if per_class > len(members):
                raise PipelineError(f"--images-per-class {per_class}: digit {c} has only {len(members)} images "
                                    f"in scikit-learn's load_digits")
            members = rng.choice(members, size=per_class, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep))


def write_digits(out: str | Path, size: int = 64, seed: int = 0, images_per_class: int | None = None,
                 classes: int = CLASSES, test_fraction: float = 0.3) -> Path:
    """Write `<out>/digits/` (train/ and test/, one folder per digit) from scikit-learn's real digit scans;
    return that directory. `images_per_class` (None: all, 174-183 per digit) subsamples each digit, seeded;
    `classes` keeps digits 0..classes-1."""
    if not 1 <= classes <= CLASSES:
        raise PipelineError(f"--classes {classes}: the digits have 10 classes; expected 1 to 10")
    if not 8 <= size <= 1024:
        raise PipelineError(f"--size {size}: expected a side of 8 to 1024 pixels")
    if images_per_class is not None and images_per_class < 2:
        raise PipelineError(f"--images-per-class {images_per_class}: expected at least 2 (one train, one test)")
    if not 0 < test_fraction < 1:
        raise PipelineError(f"test fraction {test_fraction}: expected a value between 0 and 1")
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    scans, labels = np.asarray(digits.images), np.asarray(digits.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    chosen = _subsample(labels, images_per_class, classes, rng)
    try:
        train, test = train_test_split(chosen, test_size=test_fraction, stratify=labels[chosen], random_state=seed)
    except ValueError as e:  # too few images per class for a stratified split
        raise PipelineError(f"digits: cannot split {len(chosen)} images in {classes} classes into train and test "
                            f"({e})") from None
    root = Path(out) / DIRNAME
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(f".{DIRNAME}.tmp-{secrets.token_hex(4)}")  # renamed into place when complete
    try:
        for split, indices in (("train", train), ("test", test)):
            for i in sorted(int(k) for k in indices):
                grey = np.clip(np.rint(scans[i] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
                path = partial / split / str(int(labels[i])) / f"digit_{i:04d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(grey).resize((size, size), Image.BILINEAR).save(path)
        (partial / "README").write_text(
            f"{SOURCE}.\n{len(chosen)} images in {classes} classes ({len(train)} train / {len(test)} test, "
            f"stratified, seed {seed}), {size}x{size} grey PNG upsampled bilinearly from 8x8; made by "
            "make-sample-dataset --layout digits. File digit_<i>.png is row i of sklearn.datasets.load_digits().\n")
        if root.exists():
            shutil.rmtree(root)
        partial.rename(root)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return root
