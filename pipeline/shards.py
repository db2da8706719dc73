"""Moved: the shard record to `pipeline.schema`, shard planning to `extract.sharding.plan`. This name
stays only for imports of the contract's part not yet updated (remove once none is left)."""

from .schema import SHARD_ATTRS, Shard, inputs_per_image, parse_shard_spec  # noqa: F401
