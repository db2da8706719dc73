"""Offline, `study --plan` times a TF-Hub ResNet-50 it cannot fetch on random-resnet50v2 (the same architecture)
and says so; any other unreachable model is not stood in for."""

from __future__ import annotations

from study.plan.backbone_probe import stand_in_for
from study.plan.costs import Calibration
from study.plan.text import calibration_line


def test_only_a_hub_resnet50_has_a_stand_in():
    assert stand_in_for("https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/5") == "random-resnet50v2"
    assert stand_in_for("https://tfhub.dev/google/imagenet/resnet_v1_50/feature_vector/5") == "random-resnet50v2"
    assert stand_in_for("https://tfhub.dev/google/imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/2") is None
    assert stand_in_for("/models/resnet_v2_50") is None  # a local SavedModel is loaded, never stood in for


def test_the_plan_says_the_backbone_was_timed_on_a_stand_in():
    cal = Calibration(backbone_inputs_per_s=12.5, backbone_startup_s=20.0,
                      backbone={"precision": "fp32", "stand_in": "random-resnet50v2"})
    line = calibration_line(cal)
    assert "backbone 12.5 inputs/s" in line and "timed on random-resnet50v2" in line and "cannot be fetched" in line
    cal.backbone["stand_in"] = None
    assert "timed on" not in calibration_line(cal)
