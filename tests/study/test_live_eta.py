"""The live ETA learns from the work done (study.run.progress.LearningEta) and is recorded in eta.csv (EtaLog): fed
synthetic progress on a synthetic clock, never timed."""

from __future__ import annotations

import io

import pytest

from study.run.progress import EtaLog, LearningEta, Progress, read_eta_csv


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _feed(planned: list[float], took: list[float], stop_after: int, set_up: float = 0.0) -> tuple[float, float, float]:
    """The ETA after `stop_after` units: each unit planned at planned[i] took took[i]; the first also `set_up`."""
    clock = Clock()
    learner = LearningEta(clock)
    for i in range(stop_after):
        clock.t += took[i] + (set_up if i == 0 else 0.0)
        learner.done(planned[i])
    eta = learner.eta(sum(planned[stop_after:]))
    assert eta is not None
    return eta


def test_a_plan_two_times_off_is_learned_within_a_quarter_after_a_tenth_of_the_work():
    planned, took = [1.0] * 40, [2.0] * 40
    eta, low, high = _feed(planned, took, stop_after=4, set_up=6.0)  # the first run's lazy set-up is left out
    truth = sum(took[4:])
    assert abs(eta - truth) / truth <= 0.25
    assert low <= truth <= high


def test_runs_of_unequal_plans_learn_the_same_ratio():
    planned = [1.0, 3.0, 0.5, 2.0] * 10  # methods of different cost, each taking 0.5x its plan
    took = [p * 0.5 for p in planned]
    eta, _low, _high = _feed(planned, took, stop_after=5)
    assert eta == pytest.approx(sum(took[5:]))


def test_a_load_that_starts_mid_sweep_moves_the_eta_to_the_new_pace():
    planned = [1.0] * 40
    took = [1.0] * 20 + [3.0] * 20  # a background load triples each run's time from the 21st run
    eta, low, high = _feed(planned, took, stop_after=26)
    truth = sum(took[26:])
    assert abs(eta - truth) / truth <= 0.25
    assert low < eta <= high  # the range spans the old pace and the new


def test_a_load_that_stops_mid_sweep_moves_it_back():
    planned = [1.0] * 40
    took = [3.0] * 20 + [1.0] * 20
    eta, _low, _high = _feed(planned, took, stop_after=26)
    assert abs(eta - sum(took[26:])) / sum(took[26:]) <= 0.25


def test_before_any_work_the_eta_is_the_plans_own():
    clock = Clock()
    progress = Progress("sweep", 10, None, io.StringIO(), clock=clock)
    assert progress.eta(0, 42.0) == (42.0, 42.0, 42.0)


def test_the_eta_csv_keeps_other_stages_rows_and_fills_the_true_time_left(tmp_path):
    clock, path = Clock(), tmp_path / "eta.csv"
    extract = EtaLog(path, "extract", clock)
    extract.add(0, 2, 10.0, 8.0, 12.0)
    clock.t += 9.0
    extract.close()
    sweep = EtaLog(path, "sweep", clock)
    sweep.add(1, 4, 6.0, 5.0, 7.0)
    clock.t += 3.0
    sweep.add(2, 4, 3.0, 2.5, 4.0)
    rows = read_eta_csv(path)
    assert [r["stage"] for r in rows] == ["extract", "sweep", "sweep"]
    assert rows[0]["true_left_s"] == "9.000" and rows[1]["true_left_s"] == ""  # the sweep has not ended yet
    clock.t += 4.0
    sweep.close()
    rows = read_eta_csv(path)
    assert [float(r["true_left_s"]) for r in rows] == [9.0, 7.0, 4.0]
    assert list(rows[0]) == ["time", "stage", "done", "total", "elapsed_s", "eta_s", "low_s", "high_s", "true_left_s"]
    assert not (tmp_path / "eta.csv.tmp").exists()


def test_eta_csv_is_appended_to_and_a_line_cut_short_by_a_stop_is_left_out(tmp_path):
    clock, path = Clock(), tmp_path / "eta.csv"
    log = EtaLog(path, "sweep", clock)
    for k in range(1, 4):
        clock.t += 1.0
        log.add(k, 4, 3.0, 2.0, 4.0, elapsed=float(k))
    assert [r["done"] for r in read_eta_csv(path)] == ["1", "2", "3"]
    with open(path, "a") as f:
        f.write("1004.000,sweep,4,4,4.0")  # a kill in the middle of a line
    assert [r["done"] for r in read_eta_csv(path)] == ["1", "2", "3"]
    resumed = EtaLog(path, "sweep", clock)  # a rerun rewrites the file once, the cut line gone, then appends
    clock.t += 1.0
    resumed.add(1, 1, 1.0, 1.0, 1.0)
    clock.t += 1.0
    resumed.close()
    assert [(r["done"], r["true_left_s"]) for r in read_eta_csv(path)] == [("1", ""), ("2", ""), ("3", ""), ("1", "1.000")]


def test_each_method_learns_its_own_ratio():
    # the plan is right for linear and 3x off for pirl: the runs alternate, so both are seen early
    clock = Clock()
    learner = LearningEta(clock)
    kinds = ["linear", "pirl"] * 20
    took = {"linear": 1.0, "pirl": 3.0}
    for kind in kinds[:6]:
        clock.t += took[kind]
        learner.done(1.0, kind)
    eta, low, high = learner.eta({"linear": 30.0, "pirl": 4.0})
    assert eta == pytest.approx(30.0 * 1.0 + 4.0 * 3.0)  # one ratio for both (2x) would say 68 s
    assert low <= eta <= high


def test_a_method_not_seen_yet_goes_at_the_recent_pace():
    clock = Clock()
    learner = LearningEta(clock)
    for _ in range(5):
        clock.t += 2.0
        learner.done(1.0, "none")
    eta, _low, _high = learner.eta({"none": 0.0, "pirl": 10.0})
    assert eta == pytest.approx(20.0)


def test_a_method_not_seen_yet_moves_with_a_load_that_started():
    # none went as planned, then a load tripled its pace: pirl, not seen yet, is expected at 3x its plan too
    clock = Clock()
    learner = LearningEta(clock)
    for took in [1.0] * 12 + [3.0] * 6:
        clock.t += took
        learner.done(1.0, "none")
    eta, _low, _high = learner.eta({"pirl": 10.0})
    assert eta == pytest.approx(30.0, rel=0.25)


def test_units_that_carried_a_one_off_set_up_are_left_out():
    clock = Clock()
    learner = LearningEta(clock)
    clock.t += 5.0
    learner.done(1.0, "none", one_off=True)  # the first epoch: lazy imports
    for _ in range(4):
        clock.t += 1.0
        learner.done(1.0, "none")
    clock.t += 4.0
    learner.done(0.5, "none", one_off=True)  # the first run's end: the process's first figure
    clock.t += 1.0
    learner.done(1.0, "none")
    assert learner.eta(10.0)[0] == pytest.approx(10.0)


def test_a_sweep_that_moves_from_banks_to_lone_runs_is_not_read_as_the_machine_slowing():
    # linear's epochs in a bank went at half their plan, then its lone runs' at 1.5x; pirl, left, goes as planned.
    # Each sort of unit has its own ratio, so the lone runs' 1.5x is no new pace (read as one, pirl's 10 s left
    # would be put at about 15 s)
    clock = Clock()
    learner = LearningEta(clock)
    for kind, sort, took in [("pirl", "epoch x1", 1.0)] * 4 + [("linear", "epoch x3", 0.5)] * 12 + [
            ("linear", "epoch x1", 1.5)] * 8:
        clock.t += took
        learner.done(1.0, kind, sort=sort)
    eta, low, high = learner.eta({"pirl": 10.0})
    assert eta == pytest.approx(10.0)
    assert low <= eta <= high


def test_a_load_that_starts_still_moves_the_pace_when_the_units_have_sorts():
    # the same sorts as above, each slowed 3x from the 13th unit on: the pace is 3x, and pirl is expected at 3x
    clock = Clock()
    learner = LearningEta(clock)
    units = [("pirl", "epoch x1", 1.0), ("linear", "epoch x3", 0.5), ("linear", "epoch x1", 1.5)] * 8
    for i, (kind, sort, took) in enumerate(units):
        clock.t += took * (3.0 if i >= 12 else 1.0)
        learner.done(1.0, kind, sort=sort)
    assert learner.eta({"pirl": 10.0})[0] == pytest.approx(30.0, rel=0.1)


def test_a_stall_of_a_few_units_does_not_move_the_pace_as_a_load_that_stays():
    # 40 units as planned, then 3 of the last 10 stalled 10x (a burst of another process): the 30 units left are
    # still expected at their plan (the recent time over the recent plan would say 30 x 3.7 = 111 s)
    clock = Clock()
    learner = LearningEta(clock)
    for i in range(50):
        clock.t += 10.0 if i in (42, 44, 46) else 1.0
        learner.done(1.0, "pirl")
    assert learner.eta({"pirl": 30.0})[0] == pytest.approx(30.0)
