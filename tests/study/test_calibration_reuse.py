"""A study saves its quick calibration, so a resumed run does not calibrate again; `--plan` never takes a quick
calibration for its own, fuller one."""

from __future__ import annotations

import json

import pytest

import heads.training.figures
import study.plan.calibrate
from study.plan.make import calibrate, make_plan
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

    monkeypatch.setattr(study.plan.calibrate, "calibrate_heads", no_calibration)
    # the machine's load decides nothing here (study.plan.load's reuse rule: tests/study/test_calibration_load.py)
    monkeypatch.setattr(study.plan.calibrate, "saved_calibration_verdict", lambda data: (True, "reused"))
    again = calibrate(make_plan(load_spec(path)), backbone=False, saved=saved, quick=True)
    assert again.methods == first.methods
    with pytest.raises(AssertionError, match="calibrated again"):
        calibrate(make_plan(load_spec(path)), backbone=True, saved=saved)  # --plan measures for itself


def test_the_cost_model_counts_a_sweeps_one_off_costs_and_each_scored_runs_reload(tmp_path, study_root):
    from study.plan.costs import score_seconds
    from study.plan.estimates import report_intervals, stage_seconds

    path = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", methods=("none", "linear"))
    write_matching_caches(path)
    plan = make_plan(load_spec(path))
    cal = calibrate(plan, backbone=False, saved=None, quick=True)
    assert cal.first_run_s == 0.0  # a quick calibration paid the first fit's set-up in the sweep's own process
    assert cal.score_overhead_s != 1.0 and cal.bootstrap_s_per_interval != 0.5  # measured, not the defaults
    assert all(c.load_s > 0 for c in cal.methods.values())
    cal.load = None  # the load this machine showed decides nothing here (its slowdown: test_calibration_load.py)
    before = stage_seconds(plan)["sweep"]
    cal.first_run_s, cal.bootstrap_s_per_interval = cal.first_run_s + 10.0, cal.bootstrap_s_per_interval + 1.0
    assert stage_seconds(plan)["sweep"] == pytest.approx(before + 10.0 + report_intervals(plan.spec))  # once a sweep
    n_test = plan.splits["test"].images
    none = cal.methods["none"]
    assert score_seconds("none", n_test, False, cal) == pytest.approx(
        none.predict_call_s + n_test * none.predict_row_s + none.load_s + cal.score_overhead_s)


def test_the_calibration_draws_its_figures_with_the_datasets_class_names(tmp_path, study_root, monkeypatch):
    # a figure's cost grows with its tick labels: timed with short synthetic names, a confusion drew 25-35% faster
    path = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", methods=("none",))
    write_matching_caches(path)
    plan = make_plan(load_spec(path))
    drawn: list[list[str]] = []
    original = heads.training.figures.plot_confusion
    monkeypatch.setattr(heads.training.figures, "plot_confusion", lambda m, names, *a, **k: (drawn.append(list(names)),
                                                                                  original(m, names, *a, **k)))
    calibrate(plan, backbone=False, saved=None, quick=True)
    assert drawn  # scoring's and the report's confusion figures were timed
    assert all(names == plan.splits["test"].class_names for names in drawn)
    assert len(drawn[0]) == plan.classes
