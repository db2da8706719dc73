"""Shards of one extraction: which rows each covers, and how a shard file records it.

`extract-features --shard I/N` (0-based I) extracts a contiguous range of the split's rows into its
own cache file. Ranges are whole blocks of `block` images — the images of one forward pass
(`--batch-size` // backbone inputs per image) — counted from row 0 of the split, the same fixed
blocks an unsharded run (or a resumed one) batches its rows in. So every row of a shard is computed
in exactly the batch it would be in without sharding, and the merged arrays are identical to an
unsharded run's. The N shards split the blocks as evenly as whole blocks allow.

A shard file has the cache schema over its own rows only (`image_id`, `label`, `path`, `done`,
`features/*`, `permutations/*`, `spatial/*` hold rows `row_start..row_stop - 1` of the split;
`class_names` is whole) and the full run's `config` and `config_hash`, so all shards of one run share
them. What makes it a shard is recorded beside the config, never inside it (so a merged file's
`config_hash` equals an unsharded run's), as root attributes:

    shard         "I/N"
    row_start     first row of the split in this file
    row_stop      one past its last row
    run_num_rows  rows of the whole split
    shard_block   images per forward pass (the block size the range is aligned to)

`num_rows` stays the number of rows in the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import PipelineError

SHARD_ATTRS = ("shard", "row_start", "row_stop", "run_num_rows", "shard_block")
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_NAME = re.compile(r"^(?P<base>.*)\.shard-(?P<index>\d+)-of-(?P<count>\d+)(?P<suffix>\.[^.]*)?$")


def inputs_per_image(kinds: Iterable[str], num_views: int) -> int:
    """Backbone inputs per image: the original (if asked for) plus V views of each shuffled kind."""
    kinds = tuple(kinds)
    return ("original" in kinds) + num_views * sum(k in kinds for k in ("jigsaw", "rcm"))


def images_per_block(batch_size: int, per_image: int) -> int:
    """Whole images per forward pass: the fixed block rows are batched in (at least 1)."""
    return max(1, batch_size // per_image)


def parse_shard_spec(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N; ValueError with the reason otherwise."""
    m = _SPEC.match(str(text))
    if not m:
        raise ValueError(f"expected I/N with a 0-based shard index I, e.g. 0/4, found {text!r}")
    index, count = int(m[1]), int(m[2])
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"expected 0 <= I < N (shard indices are 0-based), found {text!r}")
    return index, count


@dataclass(frozen=True)
class Shard:
    """Rows row_start..row_stop - 1 of a run of run_num_rows rows: shard `index` of `count`."""

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


def plan_shard(index: int, count: int, num_rows: int, block: int) -> Shard:
    """Shard `index` of `count` over `num_rows` rows batched in blocks of `block` images.

    The ceil(num_rows / block) blocks are split into `count` contiguous runs of whole blocks, as even
    as whole blocks allow. More shards than blocks is refused (a shard would be empty).
    """
    if not 0 <= index < count:
        raise PipelineError(f"shard {index}/{count}: expected 0 <= I < N")
    blocks = -(-num_rows // block)
    if count > blocks:
        raise PipelineError(
            f"{count} shards: the split's {num_rows} rows make only {blocks} blocks of {block} images "
            f"(--batch-size / backbone inputs per image), and a shard is whole blocks; use at most {blocks} shards"
        )
    first, last = index * blocks // count, (index + 1) * blocks // count
    return Shard(index, count, first * block, min(last * block, num_rows), num_rows, block)


def plan_shards(count: int, num_rows: int, block: int) -> list[Shard]:
    return [plan_shard(i, count, num_rows, block) for i in range(count)]


def default_shard_path(out: str | os.PathLike, index: int, count: int) -> Path:
    """`<out>.shard-I-of-N.h5` beside `out`: data/features/train.h5 -> data/features/train.shard-0-of-4.h5."""
    out = Path(out)
    suffix = out.suffix or ".h5"
    return out.with_name(f"{out.name[: len(out.name) - len(out.suffix)]}.shard-{index}-of-{count}{suffix}")


def sibling_shard_path(shard_file: str | os.PathLike, index: int, count: int) -> Path | None:
    """Where shard `index` of `count` would be, judging by another shard's default name; None if not one."""
    path = Path(shard_file)
    m = _NAME.match(path.name)
    if not m:
        return None
    return path.with_name(f"{m['base']}.shard-{index}-of-{count}{m['suffix'] or ''}")
