"""Shards of one extraction: which rows each covers, and where its file goes.

`extract-features --shard I/N` (0-based I) extracts a contiguous range of the split's rows into its
own cache file. Ranges are whole blocks of `block` images — the images of one forward pass
(`--batch-size` // backbone inputs per image) — counted from row 0 of the split, the same fixed
blocks an unsharded run (or a resumed one) batches its rows in. So every row of a shard is computed
in exactly the batch it would be in without sharding, and the merged arrays are identical to an
unsharded run's. The N shards split the blocks as evenly as whole blocks allow.

A shard file has the cache schema over its own rows only and the full run's `config` and
`config_hash`; what makes it a shard is the `pipeline.schema.Shard` record among its root attributes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.schema import Shard

_NAME = re.compile(r"^(?P<base>.*)\.shard-(?P<index>\d+)-of-(?P<count>\d+)(?P<suffix>\.[^.]*)?$")


def images_per_block(batch_size: int, per_image: int) -> int:
    """Whole images per forward pass: the fixed block rows are batched in (at least 1)."""
    return max(1, batch_size // per_image)


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
