"""A study saves its quick calibration, so a resumed run does not calibrate again; `--plan` never takes a quick
calibration for its own, fuller one."""

from __future__ import annotations

import json

import pytest

import study.calibrate
from study.plan import calibrate, make_plan
from study.spec import load_spec

from tests.study.conftest import write_matching_caches, write_spec


def test_a_quick_calibration_is_saved_and_reused_only_by_quick_calls(tmp_path, study_root, monkeypatch):
    path = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", methods=("none", "linear"))
    write_matching_caches(path)  # complete caches: no backbone probe is needed
    plan = make_plan(load_spec(path))
    saved = tmp_path / "out" / "calibration.json"
    first = calibrate(plan, backbone=False, saved=saved, quick=True)
    assert json.loads(saved.read_text())["quick"] is True

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(study.calibrate, "calibrate_heads", no_calibration)
    again = calibrate(make_plan(load_spec(path)), backbone=False, saved=saved, quick=True)
    assert again.methods == first.methods
    with pytest.raises(AssertionError, match="calibrated again"):
        calibrate(make_plan(load_spec(path)), backbone=True, saved=saved)  # --plan measures for itself
