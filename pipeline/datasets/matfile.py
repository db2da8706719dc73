"""MATLAB .mat metadata (Stanford Cars, Stanford Dogs, Flowers-102) read with scipy, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import PipelineError


def load_mat(path: Path, what: str, variables: tuple[str, ...]) -> dict:
    """The named variables of a .mat file (cells simplified to arrays / lists of dicts)."""
    if not path.is_file():
        raise PipelineError(f"{path}: missing {what} metadata file")
    from scipy.io import loadmat

    try:
        mat = loadmat(path, simplify_cells=True)
    except Exception as e:  # scipy raises ValueError, IndexError, TypeError... on a damaged file
        raise PipelineError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
    missing = [v for v in variables if v not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise PipelineError(f"{path}: no variable {missing[0]!r} (found {', '.join(found) or 'none'})")
    return mat


def as_list(value) -> list:
    """A variable as a flat list, whether scipy squeezed it to a scalar, an array, or a single dict."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    return np.atleast_1d(np.asarray(value, dtype=object)).ravel().tolist()


def as_int(value, path: Path, entry: int, field: str) -> int:
    """An integer-valued number (MATLAB stores them as double or uint8), or a PipelineError naming the entry."""
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise PipelineError(f"{path}: entry {entry} has {field} {value!r}, expected an integer")
    return int(number)


def as_text(value, path: Path, entry: int, field: str) -> str:
    value = np.asarray(value).item() if isinstance(value, np.ndarray) and value.size == 1 else value
    if not isinstance(value, str) or not value:
        raise PipelineError(f"{path}: entry {entry} has {field} {value!r}, expected a file name")
    return value
