"""Figures of a run: learning curves, test confusion matrix, a gallery of test predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.cub import display_name


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict[str, float]], path: Path, best_epoch: int) -> None:
    """Loss (train total and components, val CE) and accuracy (train, val) per epoch."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    skip = {"epoch", "lr", "seconds", "train_acc", "val_acc", "val_loss"}
    for key in [k for k in history[0] if k not in skip]:
        ax_loss.plot(epochs, [r[key] for r in history], label=f"train {key}")
    if "val_loss" in history[0]:
        ax_loss.plot(epochs, [r["val_loss"] for r in history], label="val ce", linestyle="--")
    ax_acc.plot(epochs, [r["train_acc"] for r in history], label="train")
    if "val_acc" in history[0]:
        ax_acc.plot(epochs, [r["val_acc"] for r in history], label="val", linestyle="--")
    for ax, title in ((ax_loss, "loss"), (ax_acc, "top-1 accuracy")):
        ax.axvline(best_epoch, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize=8)
    ax_acc.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Row-normalised test confusion matrix; tick labels only when there are few classes."""
    plt = _pyplot()
    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    c = len(class_names)
    size = min(12, 4 + c * 0.3)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="viridis")
    if c <= 30:
        names = [display_name(n) for n in class_names]
        ax.set_xticks(range(c), names, rotation=90, fontsize=7)
        ax.set_yticks(range(c), names, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("test confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def find_images(paths: Sequence[str], roots: Sequence[Path]) -> Path | None:
    """The first root under which the cache's relative image paths exist (images/<path>), if any."""
    for root in roots:
        for base in (root / "images", root):
            if paths and (base / paths[0]).is_file():
                return base
    return None


def plot_gallery(image_dir: Path, paths: Sequence[str], label: np.ndarray, pred: np.ndarray,
                 class_names: Sequence[str], path: Path, count: int = 16, seed: int = 0) -> None:
    """A grid of test images with true and predicted species; wrong predictions in red with a ✗."""
    from PIL import Image

    plt = _pyplot()
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(paths), size=min(count, len(paths)), replace=False))
    cols = 4
    rows = int(np.ceil(len(pick) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3, rows * 3.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, pick):
        with Image.open(image_dir / paths[i]) as im:
            ax.imshow(im.convert("RGB"))
        ok = label[i] == pred[i]
        ax.set_title(f"true: {display_name(class_names[label[i]])}\n"
                     f"{'' if ok else '✗ '}pred: {display_name(class_names[pred[i]])}",
                     fontsize=7, color="black" if ok else "red")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
