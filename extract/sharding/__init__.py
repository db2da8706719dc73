"""Sharded extraction: planning the shards (`plan`), launching them (`launch`), merging their files (`merge`)."""
