"""Figures of a run: its learning curves (curves.png), its test confusion matrix (confusion.png) and a gallery of
test predictions (predictions.png), each written crash-safe; the fonts and the pyplot every figure of the house uses.

Every figure is drawn for a page: text at least FONT points at the size it is saved (dpi 100), titles that say
what the figure is of, nothing clipped by the axes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.cub import display_name
from pipeline.files import created_atomically
from pipeline.figures import image_title


FONT = 11  # points, at the saved size: the smallest text of every figure
FONTS = {"font.size": FONT, "axes.titlesize": FONT + 1, "axes.labelsize": FONT, "xtick.labelsize": FONT,
         "ytick.labelsize": FONT, "legend.fontsize": FONT, "figure.titlesize": FONT + 2}


def save_figure(fig: Any, path: Path) -> None:
    """A PNG renamed into place when whole: a full disk leaves no truncated figure, and says which file in one line."""
    with created_atomically(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_CURVES: dict[str, Any] = {}  # the curves figure of this process, drawn again for every run
_CURVES_LOCK = threading.Lock()


def _curves_axes() -> tuple[Any, Any, Any]:
    """(figure, loss axes, accuracy axes) of the curves figure, emptied of the last run's curves.

    One figure per process, made once (its axes, ticks and fonts are reused), with fixed margins instead
    of tight_layout (which measured every label of every figure): a bank records ten runs in a row, and a
    fresh figure with tight_layout took about 1 s per run on a busy 2-core Xeon, this one about 0.2-0.4 s."""
    if "figure" not in _CURVES:
        pyplot()  # the Agg backend
        from matplotlib.figure import Figure

        import matplotlib

        with matplotlib.rc_context(FONTS):
            figure = Figure(figsize=(11, 4.8))
            axes = figure.subplots(1, 2)
        figure.subplots_adjust(left=0.07, right=0.985, bottom=0.13, top=0.83, wspace=0.22)
        for ax in axes:
            ax.tick_params(labelsize=FONT)
        _CURVES.update(figure=figure, axes=axes)
    figure, (ax_loss, ax_acc) = _CURVES["figure"], _CURVES["axes"]
    for ax in (ax_loss, ax_acc):
        for line in list(ax.lines):
            line.remove()
        ax.set_prop_cycle(None)  # colours from C0 again, as in a fresh figure
    return figure, ax_loss, ax_acc


def plot_curves(history: Sequence[dict[str, float]], path: Path, best_epoch: int, title: str = "") -> None:
    """Loss (train total and components, val CE) and accuracy (train, val) per epoch; the selected epoch marked."""
    with _CURVES_LOCK:
        figure, ax_loss, ax_acc = _curves_axes()
        epochs = [r["epoch"] for r in history]
        skip = {"epoch", "lr", "seconds", "train_acc", "val_acc", "val_loss", "grad_norm", "dead_frac"}
        for key in [k for k in history[0] if k not in skip and not k.startswith("rows_")]:
            ax_loss.plot(epochs, [r[key] for r in history], label=f"train {key}")
        if "val_loss" in history[0]:
            ax_loss.plot(epochs, [r["val_loss"] for r in history], label="validation ce", linestyle="--")
        ax_acc.plot(epochs, [r["train_acc"] for r in history], label="train")
        if "val_acc" in history[0]:
            ax_acc.plot(epochs, [r["val_acc"] for r in history], label="validation", linestyle="--")
        chosen = "selected epoch" if "val_acc" in history[0] else "last epoch (no validation)"
        for ax, ylabel, name in ((ax_loss, "loss", "loss"), (ax_acc, "top-1 accuracy", "top-1 accuracy")):
            ax.axvline(best_epoch, color="grey", linewidth=0.8, linestyle=":", label=f"{chosen} ({best_epoch})")
            ax.set_xlabel("epoch", fontsize=FONT)
            ax.set_ylabel(ylabel, fontsize=FONT)
            ax.set_title(name, fontsize=FONT + 1)
            ax.legend(fontsize=FONT, framealpha=0.85)
            ax.relim()  # the limits of this run's curves only
            ax.autoscale_view()
        ax_acc.set_ylim(-0.03, 1.05)  # a curve at 0 or 1 stays inside the frame
        figure.suptitle(title, fontsize=FONT + 1)
        save_figure(figure, path)


def most_confused(matrix: np.ndarray, count: int = 15) -> list[tuple[int, int, int]]:
    """(true, predicted, count) of the largest off-diagonal cells, largest first (ties: lower indices)."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:count]
    pairs = [(int(i), int(j), int(off[i, j])) for i, j in zip(*np.unravel_index(flat, off.shape))]
    return [p for p in pairs if p[2] > 0]


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str = "") -> None:
    """Row-normalised test confusion matrix with a colour bar; `title` (the method, K and seed) above it.

    Up to 30 classes every class is labelled. Above that (CUB's 200) tick labels would be unreadable:
    classes stay in class-index order (CUB's order groups related species), every 10th index is
    labelled, and the most confused pairs are listed by name beside the matrix with their counts.
    """
    import matplotlib

    plt = pyplot()
    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    c = len(class_names)
    names = [display_name(n) for n in class_names]
    many = c > 30
    side = min(12, 5 + c * 0.3)
    with matplotlib.rc_context(FONTS):
        fig = plt.figure(figsize=(17, 10) if many else (side + 1.5, side + 0.6))
        _draw_confusion(fig, matrix, norm, names, title, many)
        save_figure(fig, path)
    plt.close(fig)


def _draw_confusion(fig: Any, matrix: np.ndarray, norm: np.ndarray, names: list[str], title: str, many: bool) -> None:
    """The matrix, its ticks (every class, or every 10th index and the most confused pairs listed) and colour bar."""
    c = len(names)
    ax = fig.add_axes([0.07, 0.08, 0.5, 0.8] if many else [0.26, 0.25, 0.6, 0.62])
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    if many:
        ticks = list(range(0, c, 10))
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=FONT)
        ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=FONT)
        ax.set_xlabel("predicted class index")
        ax.set_ylabel("true class index")
        pairs = most_confused(matrix)
        lines = ["most confused pairs (true -> predicted: images)"]
        lines += [f"{i:3d} {names[i][:22]:22s} -> {j:3d} {names[j][:22]:22s}: {n}" for i, j, n in pairs]
        if not pairs:
            lines.append("(no errors)")
        fig.text(0.63, 0.88, "\n".join(lines), fontsize=FONT, family="monospace", va="top")
    else:
        ax.set_xticks(range(c), names, rotation=90, fontsize=FONT)
        ax.set_yticks(range(c), names, fontsize=FONT)
        ax.set_xlabel("predicted class", fontsize=FONT)
        ax.set_ylabel("true class", fontsize=FONT)
    what = f"test confusion, row-normalised ({c} classes, {int(matrix.sum())} images)"
    ax.set_title(f"{title}\n{what}" if title else what, fontsize=FONT + 1)
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label("share of the true class's images", fontsize=FONT)
    bar.ax.tick_params(labelsize=FONT)


def find_images(paths: Sequence[str], roots: Sequence[Path]) -> Path | None:
    """The first root under which the cache's relative image paths exist (images/<path>), if any."""
    for root in roots:
        for base in (root / "images", root):
            if paths and (base / paths[0]).is_file():
                return base
    return None


def plot_gallery(image_dir: Path, paths: Sequence[str], image_id: np.ndarray, label: np.ndarray, pred: np.ndarray,
                 class_names: Sequence[str], path: Path, count: int = 16, seed: int = 0) -> None:
    """A grid of test images with true and predicted species; wrong predictions in red with a ✗."""
    from PIL import Image

    plt = pyplot()
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(paths), size=min(count, len(paths)), replace=False))
    cols = 4
    rows = int(np.ceil(len(pick) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.6, rows * 4.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, pick):
        with Image.open(image_dir / paths[i]) as im:
            ax.imshow(im.convert("RGB"))
        ok = label[i] == pred[i]
        ax.set_title(f"{image_title(image_id[i], class_names[label[i]], sep=chr(10) + 'true: ')}\n"
                     f"{'' if ok else '✗ '}pred: {display_name(class_names[pred[i]])}",
                     fontsize=FONT, color="black" if ok else "red")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
