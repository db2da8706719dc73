"""The one contract every backbone's batch loop keeps (TF-Hub's, `extract.tf_batches`; torch's,
`extract.torch_backbone`): it is given the `Work` of one run (which rows, their images and views) and yields,
block by block and in order, (rows, arrays by cache name). Free of TensorFlow and torch.

`Embedder` is what `extract.run.extract_split` needs of a backbone; `split_outputs` turns one block's
backbone outputs (b, inputs per image, ...) into the cache's arrays, the same for both frameworks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import numpy as np

from pipeline.schema import PATCH_DTYPE, SHUFFLED_KINDS

from .config import ViewSpec


@dataclass(frozen=True)
class Work:
    """One run's pending rows and everything their inputs are made from."""

    files: list[str]  # the image file of each row of the cache file (0-based rows of the file)
    rows: np.ndarray  # the rows to compute, in whole blocks of `block` images, in order
    image_id: np.ndarray  # each row's image id (error messages)
    permutations: dict[str, np.ndarray]  # kind -> (N, V, G*G) of the file's rows
    offsets: np.ndarray | None  # (N, V, P*P, 2) crop corners of the patches views, None without them
    spec: ViewSpec
    image_size: int
    block: int  # images per forward pass
    spatial: bool  # whether the spatial maps are asked for


Batch = tuple[np.ndarray, dict[str, np.ndarray]]  # (rows, arrays by cache name: features/..., spatial/...)


class Embedder(Protocol):
    """What extraction needs of a backbone, whatever its framework."""

    handle: str
    weights: str  # "pretrained" or extract.backbone_names.UNTRAINED
    feature_dim: int
    spatial_shape: tuple[int, int] | None
    endpoint: str
    spatial_activation: str | None
    precision: str  # as resolved: fp32, bf16 or fp16
    preprocessing: str  # the cache config's `preprocessing`
    model: dict[str, Any] | None  # the cache config's `model` (a torch backbone's identity), None for TF-Hub

    @property
    def untrained(self) -> bool: ...

    def batches(self, work: Work) -> Iterator[Batch]: ...


def split_outputs(pooled: np.ndarray, maps: np.ndarray | None, spec: ViewSpec) -> dict[str, np.ndarray]:
    """One block's outputs for its full-size inputs, pooled (b, K, D) and maps (b, K, h, w, D) or None, K the
    original then V views of each whole-image shuffled kind -> the cache's arrays, by name."""
    arrays, col, v = {}, 0, spec.num_views
    if "original" in spec.kinds:
        arrays["features/original"] = pooled[:, 0]
        if maps is not None:
            arrays["spatial/original"] = maps[:, 0]
        col = 1
    for kind in SHUFFLED_KINDS:
        if kind in spec.kinds and kind != "patches":
            arrays[f"features/{kind}"] = pooled[:, col: col + v]
            if maps is not None and kind == "rcm":
                arrays["spatial/rcm"] = maps[:, col: col + v]
            col += v
    return arrays


def storage_dtypes(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Features float32 whatever the precision the backbone ran in, patch features and spatial maps float16
    (on the writer thread)."""
    def dtype(name: str) -> Any:
        return np.float16 if name.startswith("spatial/") else PATCH_DTYPE if name == "features/patches" else np.float32

    return {name: a.astype(dtype(name), copy=False) for name, a in arrays.items()}
