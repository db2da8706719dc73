"""Whitespace-separated metadata files (`<id> <fields...>`), read line by line with one-line errors
naming the file and line."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Iterator

from ..errors import PipelineError

INT64_MAX = 2**63 - 1  # ids are stored as int64 and seed each image's views (pipeline.views)


def decode_line(path: Path, lineno: int, raw: bytes) -> str:
    """One line as UTF-8 text (a BOM on the first line is allowed), or a PipelineError naming file and line."""
    try:
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as e:
        shown = raw[:e.start].decode("utf-8", errors="replace").strip()
        raise PipelineError(
            f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}"
            + (f", after {shown[-40:]!r}" if shown else "") + "); save the file as UTF-8"
        ) from None


def text_lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of every non-blank line, whatever the line endings (LF, CRLF, or a lone CR as
    classic Mac OS wrote them, mixed too); a missing file is one PipelineError."""
    if not path.is_file():
        raise PipelineError(f"{path}: missing {what} metadata file")
    with open(path, "rb") as f:
        data = f.read()
    for lineno, raw in enumerate(data.splitlines(), 1):  # bytes.splitlines: \n, \r\n and \r only
        text = decode_line(path, lineno, raw).strip()
        if text:
            yield lineno, text


def read_table(path: Path, columns: str, types: tuple, what: str = "CUB") -> dict:
    """Parse a whitespace-separated `<id> <fields...>` file into {id: fields}, checking every line.

    The line is split at most len(types) - 1 times, so the last field may hold spaces."""
    rows: dict = {}
    for lineno, text in text_lines(path, what):
        parts = text.split(maxsplit=len(types) - 1)
        try:
            if len(parts) != len(types):
                raise ValueError
            values = tuple(t(p) for t, p in zip(types, parts))
        except ValueError:
            raise PipelineError(f"{path}:{lineno}: expected '{columns}', found {text!r}") from None
        key = values[0]
        if types[0] is int and not 0 <= key <= INT64_MAX:
            raise PipelineError(f"{path}:{lineno}: id {parts[0]} is not a non-negative 64-bit integer (0..{INT64_MAX})")
        if key in rows:
            raise PipelineError(f"{path}:{lineno}: id {key} listed twice")
        rows[key] = values[1:]
    if not rows:
        raise PipelineError(f"{path}: file is empty, expected lines of '{columns}'")
    return rows


def read_names(path: Path, what: str) -> list[str]:
    """One name per line (e.g. FGVC-Aircraft's variants.txt); duplicates are an error."""
    names, seen = [], {}
    for lineno, text in text_lines(path, what):
        if text in seen:
            raise PipelineError(f"{path}:{lineno}: {text!r} listed twice (first on line {seen[text]})")
        seen[text] = lineno
        names.append(text)
    if not names:
        raise PipelineError(f"{path}: file is empty, expected one name per line")
    return names


def check_same_ids(reference: dict, ref_name: Path, other: dict, other_name: Path, label: str = "image_id") -> None:
    """The two files list the same ids, or a PipelineError naming the first id found in only one."""
    missing = sorted(set(reference) - set(other))
    if missing:
        raise PipelineError(
            f"{other_name}: {label} {missing[0]} from {ref_name.name} is absent"
            + (f" ({len(missing)} ids absent)" if len(missing) > 1 else "")
        )
    extra = sorted(set(other) - set(reference))
    if extra:
        raise PipelineError(
            f"{other_name}: {label} {extra[0]} is not listed in {ref_name.name}"
            + (f" ({len(extra)} unknown ids)" if len(extra) > 1 else "")
        )


def check_cub_like_tables(files: tuple[Path, ...], images: dict, classes: dict, labels: dict, is_train: dict,
                          bbox: dict) -> None:
    """The joins every CUB-style dataset (CUB, NABirds) needs: the same image ids in every per-image file,
    class ids listed in classes.txt, is_training_image 0 or 1; a PipelineError naming the file otherwise."""
    f_images, f_classes, f_labels, f_split, f_bbox = files
    for other, name in ((labels, f_labels), (is_train, f_split), (bbox, f_bbox)):
        check_same_ids(images, f_images, other, name)
    for image_id, (class_id,) in labels.items():
        if class_id not in classes:
            raise PipelineError(f"{f_labels}: image_id {image_id} has class_id {class_id}, not in {f_classes.name}")
    for image_id, (flag,) in is_train.items():
        if flag not in (0, 1):
            raise PipelineError(f"{f_split}: image_id {image_id} has is_training_image {flag}, expected 0 or 1")
    check_one_id_per_path(f_images, images, is_train, labels)


def check_one_id_per_path(f_images: Path, images: dict, is_train: dict, labels: dict) -> None:
    """No file under two image ids (paths compared normalised: ./a.jpg is a.jpg, Unicode NFC): one line naming the
    file, both ids and their splits (a train id and a test id: one image in two splits)."""
    split = {1: "train", 0: "test"}
    seen: dict[str, int] = {}
    for image_id in sorted(images):
        path = images[image_id][0]
        first = seen.setdefault(unicodedata.normalize("NFC", os.path.normpath(path)), image_id)
        if first == image_id:
            continue
        a, b = split[is_train[first][0]], split[is_train[image_id][0]]
        what = (f"one image in two splits ({a} and {b})" if a != b else "one image with two labels"
                if labels[first] != labels[image_id] else f"listed twice in {a}")
        raise PipelineError(f"{f_images}: {path} is listed as image_id {first} ({a}) and as image_id {image_id} ({b}): "
                            f"{what}; remove one")
