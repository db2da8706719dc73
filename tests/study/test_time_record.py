"""One record of time (study.run.timing): study.json keeps each stage's seconds and load, and the console and the
report print the same line from them, taken against planned."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from study.run.timing import CLOCK_FILE, StageMeter, interrupted_stage, merge_load, stage_line, state_time_text, time_text


def test_a_stage_meter_reports_seconds_and_the_share_of_the_cores_received():
    clock, cpu, load = [10.0], [1.0], [2.0]
    times = lambda: SimpleNamespace(user=cpu[0], system=0.0, children_user=0.0, children_system=0.0)  # noqa: E731
    meter = StageMeter(wall=lambda: clock[0], times=times, load=lambda: load[0], n_cores=2)
    clock[0], cpu[0], load[0] = 20.0, 6.0, 3.0
    seconds, seen = meter.stop()
    assert seconds == 10.0
    assert seen == {"load_avg": 2.5, "cores": 2, "cpu_share": 0.25}


def test_the_line_gives_taken_planned_their_ratio_and_the_load():
    line = stage_line("sweep", 200.0, 100.0, "quick", {"load_avg": 2.5, "cores": 2, "cpu_share": 0.25})
    assert line.startswith("sweep 3 min 20 s (planned 1 min 40 s by the quick calibration), 2.00x the plan")
    assert line.endswith("load 2.5 on 2 cores, the study got 25% of them")
    assert stage_line("dataset", 1.0, None, None, None) == "dataset 1 s"


def test_console_and_report_read_the_same_record():
    state = {"stage_seconds": {"extract": 30.0, "sweep": 200.0}, "stage_planned": {"sweep": 100.0},
             "stage_planned_by": {"sweep": "study --plan"},
             "stage_load": {"sweep": {"load_avg": 1.0, "cores": 2, "cpu_share": 0.9}}}
    assert state_time_text(state) == time_text(state["stage_seconds"], state["stage_planned"],
                                               state["stage_planned_by"], state["stage_load"])
    assert "2.00x the plan" in state_time_text(state)


def test_a_resumed_stages_load_is_weighted_by_the_seconds_it_covered():
    merged = merge_load({"load_avg": 1.0, "cores": 2, "cpu_share": 1.0}, 10.0,
                        {"load_avg": 3.0, "cores": 2, "cpu_share": 0.5}, 30.0)
    assert merged == {"load_avg": 2.5, "cores": 2, "cpu_share": pytest.approx(0.625)}


def test_a_stage_records_its_time_so_far_which_a_rerun_adds_after_a_kill(tmp_path):
    # the meter rewrites <out>/stage_clock.json with the stage's seconds so far; a process killed then leaves it,
    # and the next run reads it once (removed); a stage that ends removes it itself
    clock = [10.0]
    times = lambda: SimpleNamespace(user=0.0, system=0.0, children_user=0.0, children_system=0.0)  # noqa: E731
    meter = StageMeter(wall=lambda: clock[0], times=times, load=lambda: 1.0, n_cores=2, record=tmp_path,
                       stage="sweep", beat_s=3600.0)
    clock[0] = 47.5
    meter.beat()
    assert interrupted_stage(tmp_path) == ("sweep", 37.5, {"load_avg": 1.0, "cores": 2, "cpu_share": 0.0})
    assert interrupted_stage(tmp_path) is None and not (tmp_path / CLOCK_FILE).exists()
    meter.beat()
    meter.stop()
    assert interrupted_stage(tmp_path) is None
    (tmp_path / CLOCK_FILE).write_text("{half")  # a record a kill cut (never: it is written atomically) counts nothing
    assert interrupted_stage(tmp_path) is None


def test_a_study_rerun_after_a_kill_counts_the_killed_runs_time(tmp_path, study_root):
    import json

    from study.cli import run_study
    from tests.study.conftest import write_matching_caches, write_spec

    out = tmp_path / "out"
    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", out, methods=("none",), ks=("all",))
    write_matching_caches(spec)
    out.mkdir()
    load = {"load_avg": 1.0, "cores": 2, "cpu_share": 0.5}
    (out / CLOCK_FILE).write_text(json.dumps({"stage": "sweep", "seconds": 100.0, "load": load}))
    run_study(str(spec), None)
    state = json.loads((out / "study.json").read_text())
    assert 100.0 < state["stage_seconds"]["sweep"] < 200.0  # the killed run's 100 s and this run's
    assert not (out / CLOCK_FILE).exists()
