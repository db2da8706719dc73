"""A run's typed spec (heads.spec.RunSpec) from a test's options as config.json records them."""

from __future__ import annotations

from typing import Any

from heads.spec import RunSpec


def spec_of(options: dict[str, Any]) -> RunSpec:
    """aux linear and seed 0 unless given; "cv_fold" (with "cv_folds") makes it a cross-validation run."""
    record = {"aux": "linear", "seed": 0, **options}
    if "cv_fold" in options:
        record["selection"] = "cv"
    return RunSpec.from_record(record)
