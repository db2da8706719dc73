"""Whitespace-separated metadata files (`<id> <fields...>`), read line by line with one-line errors
naming the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import PipelineError


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
    """(line number, stripped text) of every non-blank line; a missing file is one PipelineError."""
    if not path.is_file():
        raise PipelineError(f"{path}: missing {what} metadata file")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
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
