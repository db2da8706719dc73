"""A calibration records the load it was taken under (study.plan.load); a loaded one is never reused silently; the
per-step fit holds its bounds openly (study.plan.calibrate.constrained_fit). Synthetic clocks and loads: nothing timed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import study.plan.calibrate
from study.plan.calibrate import constrained_fit, contended, row_floor
from study.plan.costs import Calibration, MethodCost
from study.plan.load import LoadRecord, cpu_share, reuse_verdict, runnable_others
from study.plan.make import calibrate, calibration_key, make_plan
from study.plan.text import describe
from study.spec import load_spec

from tests.study.conftest import write_matching_caches, write_spec

QUIET = LoadRecord(load_avg=0.1, cores=2, cpu_share=0.97, threads=2, taken_at=1000.0)
LOADED = LoadRecord(load_avg=2.2, cores=2, cpu_share=0.4, threads=2, taken_at=1000.0)


def test_a_load_record_says_when_another_process_had_the_cores():
    assert not QUIET.loaded and QUIET.slowdown == 1.0
    assert LOADED.loaded and LOADED.slowdown == pytest.approx((2.2 + 2) / 2)  # the cores' fair share
    assert LOADED.worst_slowdown == pytest.approx(2.5)  # 1 / the share its fits got
    assert LoadRecord(load_avg=0.0, cores=2, cpu_share=0.5).loaded  # a low share alone marks it
    busy = LoadRecord(load_avg=1.6, cores=2, cpu_share=1.0)
    assert busy.loaded and busy.slowdown == 1.0  # the others' load alone marks it; its figures got their CPU
    assert LoadRecord(load_avg=9, cores=1, cpu_share=0.001).worst_slowdown == 8.0  # capped, not 1000x
    assert cpu_share(wall_s=2.0, cpu_s=2.0, threads=2) == 0.5
    assert LoadRecord.from_json(LOADED.to_json()) == LOADED
    assert runnable_others(2, read=lambda: "2.1 1.9 1.5 5/300 1234") == 3.0
    assert contended(0.5, others=2.0, n_cores=2) and not contended(0.5, others=0.0, n_cores=2)


def test_the_reuse_rule_measures_a_loaded_calibration_again_on_a_quiet_machine():
    reuse, said = reuse_verdict(LOADED, now=1000.0 + 180, quiet_now=True)
    assert not reuse and "taken under load" in said and "3 min ago" in said
    reuse, said = reuse_verdict(LOADED, now=1000.0 + 7200, quiet_now=False)
    assert reuse and "UNDER LOAD" in said and "2 h ago" in said
    reuse, said = reuse_verdict(QUIET, now=1000.0 + 30, quiet_now=False)
    assert reuse and "30 s ago" in said and "UNDER LOAD" not in said
    assert reuse_verdict(None, now=0.0, quiet_now=True)[0] is False  # an older version's: load unknown


def _plant(tmp_path, study_root, record: LoadRecord):
    """A spec with complete caches and a saved --plan calibration taken under `record`."""
    path = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", methods=("none", "linear"))
    write_matching_caches(path)
    plan = make_plan(load_spec(path))
    cost = MethodCost(0.01, 1e-4, 1e-5, 0.5, False, 1000, spread=0.1)
    cal = Calibration(methods={"none": cost, "linear": cost}, load=record.to_json(), backbone_inputs_per_s=10.0,
                      backbone_startup_s=1.0)
    saved = tmp_path / "out" / "calibration.json"
    saved.parent.mkdir(parents=True)
    saved.write_text(json.dumps({"key": calibration_key(plan), "calibration": cal.to_json()}))
    return path, saved


@pytest.mark.parametrize("quiet_now", [True, False])
def test_a_planted_loaded_calibration_is_not_reused_silently(tmp_path, study_root, monkeypatch, quiet_now):
    path, saved = _plant(tmp_path, study_root, LOADED)
    measured = []

    def fake_heads(settings, shapes, batch, precision, spatial, calibration, quick=False):
        measured.append(True)
        calibration.methods = {"none": MethodCost(0.005, 5e-5, 1e-5, 0.5, False, 1000),
                               "linear": MethodCost(0.005, 5e-5, 1e-5, 0.5, False, 1000)}
        calibration.load = QUIET.to_json()
        return calibration

    monkeypatch.setattr(study.plan.calibrate, "calibrate_heads", fake_heads)
    monkeypatch.setattr(study.plan.calibrate, "saved_calibration_verdict",
                        lambda data: reuse_verdict(LoadRecord.from_json(data.get("load")), 1000.0 + 600, quiet_now))
    plan = make_plan(load_spec(path))
    calibrate(plan, backbone=True, saved=saved)
    text = describe(plan)
    assert measured == ([True] if quiet_now else [])
    if quiet_now:  # measured again, and saved quiet
        assert "was taken under load" in text and "measured again" in text
        assert LoadRecord.from_json(json.loads(saved.read_text())["calibration"]["load"]) == QUIET
    else:  # reused, and said: loaded, how old, and what a quiet machine would take
        assert "UNDER LOAD" in text and "10 min ago" in text
        assert "a quiet machine would take" in text and "this load implies" in text


def test_under_load_the_plan_charges_the_quiet_figures_times_the_implied_slowdown(tmp_path, study_root):
    from study.plan.estimates import stage_seconds, sweep_quiet, sweep_range

    path, _saved = _plant(tmp_path, study_root, QUIET)
    plan = make_plan(load_spec(path))
    cost = MethodCost(0.01, 1e-4, 1e-5, 0.5, False, 1000, spread=0.1)
    plan.calibration = Calibration(methods={"none": cost, "linear": cost}, load=QUIET.to_json())
    quiet_runs = [r.seconds for r in (stage_seconds(plan) and plan.runs)]
    quiet_sweep = stage_seconds(plan)["sweep"]
    plan.calibration.load = LOADED.to_json()
    loaded_sweep = stage_seconds(plan)["sweep"]
    fair = (2.2 + 2) / 2  # LOADED: 2.2 other runnable tasks and 2 threads on 2 cores
    assert [r.seconds for r in plan.runs] == pytest.approx([fair * s for s in quiet_runs])
    assert loaded_sweep == pytest.approx(fair * quiet_sweep)
    assert sweep_quiet(plan) == pytest.approx(quiet_sweep)
    low, high = sweep_range(plan)
    assert low < quiet_sweep < loaded_sweep < 2.5 * quiet_sweep <= high  # up to 1 / the share its fits got


def test_the_constrained_fit_recovers_exact_terms_and_says_when_a_bound_holds():
    steps, rows = np.array([1.0, 2.0, 4.0, 4.0]), np.array([256.0, 256.0, 256.0, 1024.0])
    step_s, row_s, note = constrained_fit(steps, rows, steps * 0.01 + rows * 2e-5)
    assert (step_s, row_s, note) == (pytest.approx(0.01), pytest.approx(2e-5), "")
    # one noisy repeat makes the slope negative: held at the floor, refitted, and said (not a silent 0)
    times = steps * 0.01 + rows * 1e-6
    times[3] -= 0.004
    floor = row_floor(dim=64, classes=10, threads=2)
    step_s, row_s, note = constrained_fit(steps, rows, times, floor)
    assert row_s == pytest.approx(floor) and step_s > 0 and "held at the FLOPs floor" in note
    # all of it per row, the intercept negative: the step term is held at 0 and said
    step_s, row_s, note = constrained_fit(steps, rows, rows * 3e-5 - 0.001 * steps)
    assert step_s == 0.0 and row_s > 0 and "per-step term came out negative" in note


def test_the_flops_floor_is_the_linear_layers_work_at_the_cores_peak():
    assert row_floor(2048, 200, 1) == pytest.approx(6 * 2048 * 200 / study.plan.calibrate.PEAK_FLOPS_PER_CORE)
    assert row_floor(2048, 200, 2) == pytest.approx(row_floor(2048, 200, 1) / 2)


def test_the_sweep_takes_torch_threads_from_the_cores_other_work_leaves_free(monkeypatch):
    """study.plan.load.ThreadsForLoad: one other runnable task on 2 cores -> 1 thread, none -> 2; looked at no more than
    every THREADS_EVERY_S; an explicit OMP_NUM_THREADS is left alone; /proc/loadavg's running count less the
    reader."""
    from study.plan.load import THREADS_EVERY_S, ThreadsForLoad, free_cores

    assert runnable_others(1, lambda: "2.10 1.50 1.00 3/107 5871", samples=3, gap_s=0) == 2.0
    assert runnable_others(1, lambda: "garbled") is None
    assert [free_cores(2, o) for o in (0.0, 0.4, 1.0, 3.0)] == [2, 2, 1, 1]

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    now, others, set_to = [0.0], [1.0], []
    threads = ThreadsForLoad(set_to.append, 2, lambda: others[0], lambda: now[0])
    assert threads.adjust() == 1 and set_to == [1]
    others[0] = 0.0
    now[0] = THREADS_EVERY_S / 2
    assert threads.adjust() == 1 and set_to == [1]  # too soon to look again
    now[0] = THREADS_EVERY_S * 2
    assert threads.adjust() == 2 and set_to == [1, 2]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert ThreadsForLoad(set_to.append, 2, lambda: 1.0, lambda: 0.0).adjust() is None and set_to == [1, 2]


def test_a_lagging_load_average_does_not_mark_a_calibration_whose_fits_ran_alone_as_loaded():
    """The load average just after another job ends still reads high; the runnable tasks measured during the fits
    and the CPU they received decide."""
    assert not LoadRecord(load_avg=2.2, cores=2, cpu_share=0.95, others=0.2).loaded
    assert LoadRecord(load_avg=2.2, cores=2, cpu_share=0.95, others=None).loaded  # nothing measured: the average
    assert LoadRecord(load_avg=0.1, cores=2, cpu_share=0.95, others=1.5).loaded
    assert LoadRecord(load_avg=0.1, cores=2, cpu_share=0.5, others=0.0).loaded
