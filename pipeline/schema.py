"""The HDF5 feature cache's schema: the contract between stage 1 (writer) and stage 2 (reader).

One file per split. Schema (format_version 1), N rows sorted by image_id, V views per image:

    image_id               (N,)          int64   CUB image id (1-based)
    label                  (N,)          int64   0-based class index
    path                   (N,)          utf-8   image path relative to images/
    class_names            (C,)          utf-8   class index -> name from classes.txt
    official_split         (N,)          utf-8   train / val / test: only for datasets with an official val split
    done                   (N,)          bool    rows already written (resume mask)
    features/original      (N, D)        float32
    features/jigsaw        (N, V, D)     float32
    features/rcm           (N, V, D)     float32
    permutations/jigsaw    (N, V, G*G)   int16   perm[p] = original tile now at position p
    permutations/rcm       (N, V, R*R)   int16   same convention
    features/patches       (N, V, P*P, D) float16 the P*P patch crops of each view, in their shuffled order
    permutations/patches   (N, V, P*P)   int16   perm[p] = original cell of the patch at position p
    offsets/patches        (N, V, P*P, 2) int16  (y, x) of the crop at position p in the resized image
    spatial/original       (N, h, w, D)  float16 only with --spatial
    spatial/rcm            (N, V, h, w, D) float16 only with --spatial

Root attributes: format_version, backbone, backbone_weights, image_size, split, seed, views (JSON),
config (JSON, a `CacheConfig`), config_hash, complete, created_by, feature_dim, num_rows; with
spatial maps also backbone_endpoint and spatial_activation (which activation the maps are). A shard
of a sharded extraction holds its own rows only and adds the `SHARD_ATTRS` (`Shard`); a merged file
adds merged_from, and a virtual one maps its features and spatial maps onto the shard files.

Writing: `pipeline.writer`; reading: `pipeline.reader`; crash safety: `pipeline.files`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from . import CREATED_BY
from .views import DEFAULT_PATCH_GRID, SHUFFLED_KINDS  # the view kinds whose views carry a permutation

FORMAT_VERSION = 1
FEATURE_KINDS = ("original", *SHUFFLED_KINDS)  # every `features/<kind>`, in their order in a batch
SPATIAL_KINDS = ("original", "rcm")  # the kinds whose spatial maps --spatial stores
PATCH_DTYPE = np.dtype(np.float16)  # features/patches: cosine to float32 > 0.999 (benchmarks/bench_extract.py)
DEFAULT_CACHE_DIR = Path("data/features")
DEFAULT_PRECISION_OF_OLD_CACHES = "fp32"  # caches written before extract-features --precision ran in float32


def default_cache_path(split: str) -> Path:
    """Where extract-features writes a split when --out is not given."""
    return DEFAULT_CACHE_DIR / f"{split}.h5"


@dataclass(frozen=True)
class CacheConfig:
    """Everything that determines a cache's arrays: hashed into config_hash, stored as the `config` attribute.

    Built here only: by extraction, by the synthetic test writer, and compared key by key on resume.
    """

    backbone: str
    image_size: int
    split: str
    seed: int
    views: dict[str, Any]
    spatial: bool
    preprocessing: str
    dataset: str
    precision: str = "fp32"
    format_version: int = FORMAT_VERSION
    # which dataset and split definition (`pipeline.datasets`: name, reader options, official validation
    # split); None for CUB-200-2011, so that CUB caches keep the config (and config_hash) they always had
    source: dict[str, Any] | None = None
    # a PyTorch backbone's identity (framework, library, architecture, weights: "random" or the file's sha256,
    # feature width, map grid); None for TF-Hub and random-resnet50v2, whose caches keep their config_hash
    model: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The plain dict stored (as canonical JSON) in the file (`source` and `model` only when set)."""
        config = asdict(self)
        for optional in ("source", "model"):
            if config[optional] is None:
                del config[optional]
        return config


def cache_dataset(config: dict[str, Any]) -> str:
    """The dataset a cache's config was extracted from ('cub' when it records no `source`)."""
    return str((config.get("source") or {}).get("dataset", "cub"))


def inputs_per_image(kinds: Iterable[str], num_views: int, patch_grid: int = DEFAULT_PATCH_GRID) -> int:
    """Backbone inputs per image: the original (if asked for), V views of each whole-image shuffled kind,
    and V x patch_grid^2 (small) patch crops for "patches"."""
    kinds = tuple(kinds)
    whole = ("original" in kinds) + num_views * sum(k in kinds for k in SHUFFLED_KINDS if k != "patches")
    return whole + (num_views * patch_grid ** 2 if "patches" in kinds else 0)


def dataset_fingerprint(image_id: np.ndarray, label: np.ndarray, paths: Iterable[str]) -> str:
    """A short hash of the rows a cache holds, so caches of different datasets never mix."""
    h = hashlib.sha256()
    h.update(np.asarray(image_id, dtype=np.int64).tobytes())
    h.update(np.asarray(label, dtype=np.int64).tobytes())
    h.update("\n".join(paths).encode())
    return h.hexdigest()[:16]


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines the cached arrays."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


# --- shards: a file holding a contiguous range of a split's rows (planned by `extract.sharding`) ---

SHARD_ATTRS = ("shard", "row_start", "row_stop", "run_num_rows", "shard_block")
_SHARD_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard_spec(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N; ValueError with the reason otherwise."""
    m = _SHARD_SPEC.match(str(text))
    if not m:
        raise ValueError(f"expected I/N with a 0-based shard index I, e.g. 0/4, found {text!r}")
    index, count = int(m[1]), int(m[2])
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"expected 0 <= I < N (shard indices are 0-based), found {text!r}")
    return index, count


@dataclass(frozen=True)
class Shard:
    """Rows row_start..row_stop - 1 of a run of run_num_rows rows: shard `index` of `count`.

    Recorded as the root attributes `SHARD_ATTRS` beside the config, never inside it, so a merged
    file's config_hash equals an unsharded run's; `num_rows` stays the number of rows in the file.
    """

    index: int
    count: int
    row_start: int
    row_stop: int
    run_num_rows: int
    block: int

    @property
    def spec(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def num_rows(self) -> int:
        return self.row_stop - self.row_start

    def rows_text(self) -> str:
        """'rows 6..11 of 12' (inclusive, 0-based rows of the split)."""
        return f"rows {self.row_start}..{self.row_stop - 1} of {self.run_num_rows}"

    def describe(self) -> str:
        """'shard 1/2 (rows 6..11 of 12, blocks of 2 images)'."""
        return f"shard {self.spec} ({self.rows_text()}, blocks of {self.block} images)"

    def attrs(self) -> dict[str, Any]:
        return {"shard": self.spec, "row_start": self.row_start, "row_stop": self.row_stop,
                "run_num_rows": self.run_num_rows, "shard_block": self.block}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> "Shard | None":
        """The shard a file's root attributes describe, or None for a whole (unsharded) cache."""
        if "shard" not in attrs:
            return None
        spec = attrs["shard"]
        index, count = parse_shard_spec(spec.decode() if isinstance(spec, bytes) else spec)
        return cls(index, count, int(attrs["row_start"]), int(attrs["row_stop"]), int(attrs["run_num_rows"]),
                   int(attrs["shard_block"]))


# --- what a file of a given layout holds ---

@dataclass
class CacheLayout:
    """What the file will hold: row metadata, view settings and array shapes."""

    config: dict[str, Any]  # CacheConfig.as_dict()
    image_id: np.ndarray
    label: np.ndarray
    paths: list[str]
    class_names: list[str]
    feature_dim: int
    permutations: dict[str, np.ndarray]  # kind -> (N, V, G*G) int16
    spatial_shape: tuple[int, int] | None = None  # (h, w) when spatial maps are stored
    attrs: dict[str, Any] = field(default_factory=dict)  # extra root attributes (backbone_weights...)
    shard: Shard | None = None  # set for a shard file: the rows above are its rows only
    official_split: list[str] | None = None  # per row: train / val / test, for datasets with an official val split
    offsets: dict[str, np.ndarray] = field(default_factory=dict)  # "patches" -> (N, V, P*P, 2) int16 crop corners

    @property
    def kinds(self) -> list[str]:
        return list(self.config["views"]["kinds"])

    @property
    def num_views(self) -> int:
        return int(self.config["views"]["num_views"])

    @property
    def patch_grid(self) -> int:
        return int(self.config["views"].get("patch_grid", DEFAULT_PATCH_GRID))


@dataclass(frozen=True)
class ArraySpec:
    """One computed array of a cache: its name, shape, dtype and storage (chunks, compression)."""

    name: str
    shape: tuple[int, ...]
    dtype: Any
    storage: dict[str, Any]


def _chunk_rows(n: int, row_bytes: int, target: int = 4 << 20) -> int:
    return int(max(1, min(n, target // max(row_bytes, 1))))


def array_specs(layout: CacheLayout) -> list[ArraySpec]:
    """The arrays the backbone fills (`features/*`, `spatial/*`), as every cache of `layout` stores them."""
    n, d, v = len(layout.image_id), layout.feature_dim, layout.num_views
    specs = []
    for kind in layout.kinds:
        shape = (n, d) if kind == "original" else (n, v, layout.patch_grid ** 2, d) if kind == "patches" else (n, v, d)
        dtype = PATCH_DTYPE if kind == "patches" else np.dtype(np.float32)
        chunks = (_chunk_rows(n, dtype.itemsize * int(np.prod(shape[1:]))),) + shape[1:]
        specs.append(ArraySpec(f"features/{kind}", shape, dtype, {"chunks": chunks}))
    if layout.spatial_shape is not None:
        h, w = layout.spatial_shape
        for kind in SPATIAL_KINDS:
            if kind not in layout.kinds:
                continue
            shape = (n, h, w, d) if kind == "original" else (n, v, h, w, d)
            chunks = (1,) + shape[1:] if kind == "original" else (1, 1) + shape[2:]  # one map per chunk
            specs.append(ArraySpec(f"spatial/{kind}", shape, np.dtype(np.float16),
                                   {"chunks": chunks, "compression": "gzip", "compression_opts": 1, "shuffle": True}))
    return specs


BASE_ATTRS = ("format_version", "backbone", "image_size", "split", "seed", "views", "config", "config_hash", "complete",
              "created_by", "feature_dim", "num_rows")  # every cache's; layout.attrs and shard attributes come on top


def root_attrs(layout: CacheLayout) -> dict[str, Any]:
    """The root attributes of a new cache of `layout` (`complete` False)."""
    return {
        "format_version": FORMAT_VERSION,
        "backbone": layout.config["backbone"],
        "image_size": layout.config["image_size"],
        "split": layout.config["split"],
        "seed": layout.config["seed"],
        "views": json.dumps(layout.config["views"], sort_keys=True),
        "config": json.dumps(layout.config, sort_keys=True),
        "config_hash": config_hash(layout.config),
        "complete": False,
        "created_by": CREATED_BY,
        "feature_dim": layout.feature_dim,
        "num_rows": len(layout.image_id),
        **layout.attrs,
        **(layout.shard.attrs() if layout.shard is not None else {}),
    }
