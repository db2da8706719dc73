"""CUB-200-2011 reader (kept importable here; the reader lives in pipeline.datasets.cub)."""

from __future__ import annotations

from .datasets.base import Dataset as CubSplit
from .datasets.cub import METADATA_FILES, SPLITS, display_name, load_cub

__all__ = ["CubSplit", "METADATA_FILES", "SPLITS", "display_name", "load_cub"]
