"""Synthetic copies of each dataset's layout (`make-sample-dataset --layout NAME`): the real file names
and formats (.mat files in the devkits' structures), small coloured-parts pictures from pipeline.sample.
Not the datasets: they test the readers end to end offline."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import PipelineError
from .pictures import class_design, draw_picture

THREE_WAY = ("aircraft", "flowers102", "folder")  # layouts with an official validation split


@dataclass
class Image:
    c: int  # 0-based class
    m: int  # index within its class
    split: str  # train / val / test
    picture: object  # PIL image


def _images(rng: np.random.Generator, classes: int, per_class: int, min_side: int, max_side: int,
            three_way: bool) -> list[Image]:
    """Pictures of every class with their official split: half test, the rest train (and val)."""
    designs = [class_design(rng) for _ in range(classes)]
    out = []
    for c in range(classes):
        order = rng.permutation(per_class)
        n_test = per_class // 2
        n_val = (per_class - n_test) // 2 if three_way else 0
        split = {int(m): "test" if r < n_test else "val" if r < n_test + n_val else "train" for r, m in enumerate(order)}
        for m in range(per_class):
            width, height = (int(x) for x in rng.integers(min_side, max_side + 1, 2))
            picture = draw_picture(rng, designs[c], width, height)
            if c == 0 and m == 1:  # one grayscale image, as the real datasets have a few
                picture = picture.convert("L")
            out.append(Image(c, m, split[m], picture))
    return out


def _save(image: Image, path: Path) -> tuple[int, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.picture.save(path, quality=90)
    return image.picture.size


def _lines(path: Path, lines: list[str], rng: np.random.Generator, shuffle: bool) -> None:
    if shuffle:
        lines = [lines[i] for i in rng.permutation(len(lines))]
    path.write_text("\n".join(lines) + "\n")


def _cells(values: list[str], shape: tuple[int, int]) -> np.ndarray:
    """A MATLAB cell array of strings."""
    cells = np.empty(len(values), dtype=object)
    cells[:] = values
    return cells.reshape(shape)


def _aircraft(root: Path, images: list[Image], classes: int, rng, shuffle: bool) -> Path:
    data = root / "data"
    names = {"variant": [f"Sample/Variant {c + 1}-200" for c in range(classes)],
             "family": [f"Family {k + 1}" for k in range((classes + 1) // 2)],
             "manufacturer": [f"Maker {k + 1} Aero" for k in range((classes + 3) // 4)]}
    of = {"variant": lambda c: c, "family": lambda c: c // 2, "manufacturer": lambda c: c // 4}
    ids = [f"{i:07d}" for i in rng.choice(10_000_000, size=len(images), replace=False)]
    boxes = []
    for key, image in zip(ids, images):
        w, h = _save(image, data / "images" / f"{key}.jpg")
        boxes.append(f"{key} {int(w * 0.1) + 1} {int(h * 0.1) + 1} {int(w * 0.9)} {int(h * 0.9)}")
    for level, plural in (("variant", "variants"), ("family", "families"), ("manufacturer", "manufacturers")):
        (data / f"{plural}.txt").write_text("\n".join(names[level]) + "\n")
        for split, members in (("train", ("train",)), ("val", ("val",)), ("trainval", ("train", "val")), ("test", ("test",))):
            lines = [f"{k} {names[level][of[level](im.c)]}" for k, im in zip(ids, images) if im.split in members]
            _lines(data / f"images_{level}_{split}.txt", lines, rng, shuffle)
    _lines(data / "images_box.txt", boxes, rng, shuffle)
    return root


def _cars(root: Path, images: list[Image], classes: int, rng, shuffle: bool) -> Path:
    from scipy.io import savemat

    (root / "devkit").mkdir(parents=True)
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": _cells([f"Sample Make Model {c + 1} 2012" for c in range(classes)], (1, classes))})
    dtype = [(f, object) for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    for split, folder, mat in (("train", "cars_train", root / "devkit" / "cars_train_annos.mat"),
                               ("test", "cars_test", root / "cars_test_annos_withlabels.mat")):
        members = [im for im in images if im.split == split]
        if shuffle:
            members = [members[i] for i in rng.permutation(len(members))]
        records = np.zeros((1, len(members)), dtype=dtype)
        for k, image in enumerate(members):
            w, h = _save(image, root / folder / f"{k + 1:05d}.jpg")
            records[0, k] = (np.uint8(1), np.uint8(2), np.uint16(w - 2), np.uint16(h - 3), np.uint8(image.c + 1),
                             f"{k + 1:05d}.jpg")
        savemat(mat, {"annotations": records})
    return root


def _dogs(root: Path, images: list[Image], classes: int, rng, shuffle: bool) -> Path:
    from scipy.io import savemat

    folders = [f"n{2085620 + 17 * c:08d}-Sample_breed_{c + 1}" for c in range(classes)]
    listed = {"train": [], "test": []}
    for image in images:
        rel = f"{folders[image.c]}/{folders[image.c].split('-')[0]}_{image.m + 1}.jpg"
        _save(image, root / "Images" / rel)
        listed[image.split].append((rel, image.c + 1))
    for split, rows in list(listed.items()) + [("file", listed["train"] + listed["test"])]:
        if shuffle:
            rows = [rows[i] for i in rng.permutation(len(rows))]
        savemat(root / f"{split}_list.mat", {
            "file_list": _cells([p for p, _ in rows], (len(rows), 1)),
            "annotation_list": _cells([p[:-4] for p, _ in rows], (len(rows), 1)),
            "labels": np.asarray([[float(c)] for _, c in rows]),
        })
    return root


def _flowers102(root: Path, images: list[Image], classes: int, rng, shuffle: bool) -> Path:
    from scipy.io import savemat

    order = rng.permutation(len(images)) if shuffle else np.arange(len(images))
    numbered = [(i + 1, images[k]) for i, k in enumerate(order)]  # image index (1-based) -> picture
    for i, image in numbered:
        _save(image, root / "jpg" / f"image_{i:05d}.jpg")
    labels = np.zeros((1, len(images)))
    for i, image in numbered:
        labels[0, i - 1] = image.c + 1
    savemat(root / "imagelabels.mat", {"labels": labels})
    sets = {var: np.asarray([[i for i, im in numbered if im.split == split]], dtype=np.float64)
            for var, split in (("trnid", "train"), ("valid", "val"), ("tstid", "test"))}
    savemat(root / "setid.mat", sets)
    return root


def _nabirds(root: Path, images: list[Image], classes: int, rng, shuffle: bool) -> Path:
    class_ids = [295 + 3 * c for c in range(classes)]  # non-contiguous, as NABirds' are
    keys = [f"{int(rng.integers(1 << 62)):016x}-{k:04x}-4d0c-bfe1-4cae3c85c829" for k in range(len(images))]
    rows = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": [], "bounding_boxes.txt": []}
    for key, image in zip(keys, images):
        rel = f"{class_ids[image.c]:04d}/{key.replace('-', '')}.jpg"
        w, h = _save(image, root / "images" / rel)
        rows["images.txt"].append(f"{key} {rel}")
        rows["image_class_labels.txt"].append(f"{key} {class_ids[image.c]}")
        rows["train_test_split.txt"].append(f"{key} {int(image.split == 'train')}")
        rows["bounding_boxes.txt"].append(f"{key} {int(w * 0.1)} {int(h * 0.1)} {int(w * 0.8)} {int(h * 0.8)}")
    for name, lines in rows.items():
        _lines(root / name, lines, rng, shuffle)
    inner = [(0, "Birds"), (1, "Sample perching birds")]  # hierarchy nodes that label no image
    (root / "classes.txt").write_text("\n".join(f"{i} {n}" for i, n in inner + [
        (cid, f"Sample bird {c + 1} (Adult)") for c, cid in enumerate(class_ids)]) + "\n")
    (root / "hierarchy.txt").write_text("\n".join(["1 0"] + [f"{cid} 1" for cid in class_ids]) + "\n")
    return root


def _folder(root: Path, images: list[Image], classes: int, rng, shuffle: bool) -> Path:
    names = [f"sample class {c + 1:02d}" for c in range(classes)]
    rows = []
    for image in images:
        rel = f"{image.split}/{names[image.c]}/img_{image.m + 1:04d}.jpg"
        _save(image, root / rel)
        rows.append((rel, names[image.c], image.split))
    if shuffle:
        rows = [rows[i] for i in rng.permutation(len(rows))]
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("path", "label", "split"))
        writer.writerows(rows)
    return root


WRITERS: dict[str, tuple[str, Callable]] = {
    "aircraft": ("fgvc-aircraft-2013b", _aircraft),
    "cars": ("stanford_cars", _cars),
    "dogs": ("StanfordDogs", _dogs),
    "flowers102": ("flowers-102", _flowers102),
    "nabirds": ("nabirds", _nabirds),
    "folder": ("folder", _folder),
}


def make_sample_layout(layout: str, out: str | Path, classes: int, images_per_class: int, seed: int = 0,
                       min_side: int = 96, max_side: int = 200, shuffle_metadata: bool = False) -> Path:
    """Write `<out>/<the dataset's directory>/` in `layout`; return that directory."""
    if layout not in WRITERS:
        raise PipelineError(f"--layout: expected one of cub, {', '.join(WRITERS)}, found {layout!r}")
    if layout in THREE_WAY and images_per_class < 3:
        raise PipelineError(f"--layout {layout} has train, val and test splits: expected at least 3 images per class, "
                            f"found {images_per_class}")
    dirname, write = WRITERS[layout]
    root = Path(out) / dirname
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    images = _images(rng, classes, images_per_class, min_side, max_side, layout in THREE_WAY)
    write(root, images, classes, rng, shuffle_metadata)
    (root / "README").write_text(f"Synthetic sample in the {layout} layout: {classes} classes x {images_per_class} "
                                 f"images, seed {seed}. Not the real dataset; made by make-sample-dataset.\n")
    return root
