"""The sweep's running ETA: the plan's estimates of the work left, counted in epochs, refitted by how the epochs and
runs trained here went (study.run.sweep_lines.SweepLines), on a synthetic clock."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import study.run.progress
from study.plan.costs import Calibration, MethodCost
from study.run.progress import read_eta_csv
from study.run.sweep_lines import SweepLines

EPOCHS = 10


def _plan(first_run_s: float, runs: int, out: Path, own_s: float = 0.0, first_end_s: float = 0.0,
          **fields: Any) -> SimpleNamespace:
    """`runs` runs of method none, each planned at 1 s: 10 epochs of 0.1 s less `own_s` of its own work after them
    (`fields`: more of study.plan.make.RunPlan's, the same for each)."""
    planned = [SimpleNamespace(label=f"none_{i}", seed=0, seconds=1.0, aux="none", options=None, epochs=None, **fields)
               for i in range(runs)]
    spec = SimpleNamespace(selection="validation", search="grid", out=out, epochs=EPOCHS)
    cost = MethodCost(step_s=0.0, row_s=0.0, predict_row_s=0.0, overhead_s=own_s, uses_unlabelled=False, model_bytes=0)
    return SimpleNamespace(runs=planned, spec=spec, reads_maps=lambda aux: False,
                           calibration=Calibration(methods={"none": cost}, first_run_s=first_run_s,
                                                   first_end_s=first_end_s))


class Sweep:
    """SweepLines fed epochs and run ends on a clock the test moves."""

    def __init__(self, monkeypatch, tmp_path: Path, runs: int = 4, first_run_s: float = 0.0, own_s: float = 0.0):
        self.now = [100.0]
        monkeypatch.setattr(study.run.progress.time, "time", lambda: self.now[0])
        self.runs = [SimpleNamespace(label=f"none_{i}", seed=0, run_dir=Path(f"r{i}")) for i in range(runs)]
        self.stream = io.StringIO()
        self.lines = SweepLines(_plan(first_run_s, runs, tmp_path, own_s), self.runs, self.stream)

    def train(self, k: int, epochs: int, epoch_s: float, set_up: float = 0.0, own_s: float = 0.0) -> None:
        """Run k (1-based) trains `epochs` epochs of `epoch_s` (the first also `set_up`), then its own work."""
        for e in range(epochs):
            self.now[0] += epoch_s + (set_up if e == 0 else 0.0)
            self.lines.on_epoch([self.runs[k - 1]])
        self.now[0] += own_s
        self.lines.on_run(k, len(self.runs), self.runs[k - 1], "trained", True)

    def eta(self) -> float:
        """The ETA now, in seconds (the line shows it rounded)."""
        return self.lines.progress.learner.eta(self.lines.left())[0]


def test_the_one_off_set_up_still_to_be_paid_at_the_first_runs_end_is_work_left(monkeypatch, tmp_path):
    # one run left (a resumed sweep): 10 epochs of 0.1 s; the process's one-off set-up is 1 s, 0.4 s of it paid in
    # the first epoch (the first fit's) and 0.6 s at the run's end (its first files and figure). After the first
    # epoch 0.9 s of epochs and the 0.6 s are left, the plan's own till an ordinary epoch is done; after the second,
    # 1.4 s (counting the whole set-up in the first epoch said 0.8 s)
    sweep = Sweep(monkeypatch, tmp_path, runs=1)
    sweep.lines = SweepLines(_plan(1.0, 1, tmp_path, first_end_s=0.6), sweep.runs, sweep.stream)
    sweep.now[0] += 0.1 + 0.4
    sweep.lines.on_epoch([sweep.runs[0]])
    assert sweep.lines.left() == {"none": pytest.approx(0.9), "": pytest.approx(0.6)}
    assert sweep.lines.progress.learner.eta(sweep.lines.left()) is None  # a one-off unit alone: the plan's own
    assert sweep.lines.progress.eta(1, sweep.lines.left())[0] == pytest.approx(1.5)
    sweep.now[0] += 0.1
    sweep.lines.on_epoch([sweep.runs[0]])
    assert sweep.eta() == pytest.approx(1.4)
    for _ in range(8):
        sweep.now[0] += 0.1
        sweep.lines.on_epoch([sweep.runs[0]])
    assert sweep.eta() == pytest.approx(0.6)
    sweep.now[0] += 0.6
    sweep.lines.on_run(1, 1, sweep.runs[0], "trained", True)
    assert sweep.lines.left() == {}


def test_the_first_runs_one_off_set_up_does_not_inflate_the_eta(monkeypatch, tmp_path):
    # 4 runs of 1 s each; the first also pays 3 s of the process's set-up, as the calibration said: it went as
    # planned, so the 3 runs left take 3 s (counting the set-up against the first run alone would say 12 s)
    sweep = Sweep(monkeypatch, tmp_path, first_run_s=3.0)
    sweep.train(1, EPOCHS, 0.1, set_up=3.0)
    assert sweep.eta() == pytest.approx(3.0)


def test_the_eta_refits_when_the_runs_go_slower_than_planned(monkeypatch, tmp_path):
    # no set-up, and the first run took twice its estimate: the runs left are expected at twice theirs
    sweep = Sweep(monkeypatch, tmp_path)
    sweep.train(1, EPOCHS, 0.2)
    assert sweep.eta() == pytest.approx(6.0)


def test_runs_that_stop_early_teach_the_epochs_the_runs_left_will_train(monkeypatch, tmp_path):
    # each run is planned at 10 epochs; the epoch rule stops the first two after 4: the two left are expected to
    # train 4 epochs each at the planned 0.1 s (the plan's whole ceiling would say 2 s)
    sweep = Sweep(monkeypatch, tmp_path)
    sweep.train(1, 4, 0.1)
    sweep.train(2, 4, 0.1)
    assert sweep.eta() == pytest.approx(0.8)


def test_the_run_under_way_counts_the_epochs_it_has_done(monkeypatch, tmp_path):
    # two runs ended after 5 epochs each; the third has done 3 of its expected 5: 2 of its epochs and the fourth's 5
    # are left (0.7 s), each taking 0.1 s as planned; the plan's own work of a run (0.2 s) comes after its epochs
    sweep = Sweep(monkeypatch, tmp_path, own_s=0.2)  # each run: 10 epochs of 0.08 s + 0.2 s
    sweep.train(1, 5, 0.08, own_s=0.2)
    sweep.train(2, 5, 0.08, own_s=0.2)
    for _ in range(3):
        sweep.now[0] += 0.08
        sweep.lines.on_epoch([sweep.runs[2]])
    left = sweep.lines.left()
    assert left["none"] == pytest.approx(2 * 0.08 + 0.2 + 5 * 0.08 + 0.2)
    eta, _low, _high = sweep.lines.progress.learner.eta(left)
    assert eta == pytest.approx(left["none"])  # every epoch and run went as planned


def test_a_load_that_starts_within_a_run_moves_the_eta_before_the_run_ends(monkeypatch, tmp_path):
    sweep = Sweep(monkeypatch, tmp_path)
    sweep.train(1, EPOCHS, 0.1)
    sweep.train(2, EPOCHS, 0.1)
    for _ in range(6):  # the third run's epochs now take 3x their plan
        sweep.now[0] += 0.3
        sweep.lines.on_epoch([sweep.runs[2]])
    eta, _low, high = sweep.lines.progress.learner.eta(sweep.lines.left())
    truth = 4 * 0.3 + EPOCHS * 0.3
    assert abs(eta - truth) / truth <= 0.25
    assert high >= eta


def test_the_sweeps_etas_go_to_eta_csv_with_the_time_that_truly_remained(monkeypatch, tmp_path):
    sweep = Sweep(monkeypatch, tmp_path)
    for k in range(1, 5):
        sweep.train(k, EPOCHS, 0.2)  # every run takes twice its plan
    rows = [r for r in read_eta_csv(tmp_path / "eta.csv") if r["stage"] == "sweep"]
    ends = [next(r for r in rows if r["done"] == str(k)) for k in range(1, 5)]  # each run's line
    assert [float(r["true_left_s"]) for r in ends] == pytest.approx([6.0, 4.0, 2.0, 0.0])
    assert [float(r["eta_s"]) for r in ends] == pytest.approx([6.0, 4.0, 2.0, 0.0])
    assert [float(r["elapsed_s"]) for r in ends] == pytest.approx([2.0, 4.0, 6.0, 8.0])
    within = [r for r in rows if r not in ends]  # ETAs within a run: at most one a second (study.run.progress)
    times = [float(r["time"]) for r in within]
    assert within and all(b - a >= 1.0 - 1e-6 for a, b in zip(times, times[1:]))
    assert all(abs(float(r["eta_s"]) - float(r["true_left_s"])) <= 0.2 + 1e-6 for r in within)
    assert sweep.stream.getvalue().count("\n") == 5  # a log gets a line per run and the closing one, not per epoch


def test_a_cell_not_seen_yet_is_expected_between_the_cells_seen_and_the_plans_epochs(monkeypatch, tmp_path):
    # cell (none, K = 1) stopped after 2 of 10 epochs, cell (none, 5) after 6; runs 3-4 are (none, all), not seen
    # yet: fewer labels stop sooner, so the cells seen do not speak for it alone: it is expected at the mean of
    # theirs and the plan's 10 counted as one cell more ((2 + 6 + 10) / 3 = 6 epochs), the range reaching from the
    # fewest seen (2) to the plan's (10)
    sweep = Sweep(monkeypatch, tmp_path)
    for run, k in zip(sweep.runs, (1, 5, None, None)):
        sweep.lines.work[run.run_dir] = replace(sweep.lines.work[run.run_dir], cell=("none", k))
    sweep.train(1, 2, 0.1)
    sweep.train(2, 6, 0.1)
    eta, low, high = sweep.lines.progress.learner.eta(sweep.lines.left(), sweep.lines.bounds())
    assert eta == pytest.approx(2 * 0.6)
    assert low == pytest.approx(2 * 0.2, rel=0.15)
    assert high == pytest.approx(2 * 1.0, rel=0.15)


def test_before_any_run_stops_early_the_range_reaches_the_earliest_epoch_the_rule_allows(monkeypatch, tmp_path):
    # patience 3: the rule can stop a run after its 4th epoch at the earliest. Two runs trained all 10 epochs, the
    # two left are of cells not seen yet: expected at the plan's 10, the range reaching down to 4 epochs each
    sweep = Sweep(monkeypatch, tmp_path)
    for run, k in zip(sweep.runs, (1, 5, None, None)):
        sweep.lines.work[run.run_dir] = replace(sweep.lines.work[run.run_dir], cell=("none", k), patience=3)
    sweep.train(1, EPOCHS, 0.1)
    sweep.train(2, EPOCHS, 0.1)
    eta, low, high = sweep.lines.progress.learner.eta(sweep.lines.left(), sweep.lines.bounds())
    assert eta == pytest.approx(2.0)
    assert low == pytest.approx(2 * 0.4, rel=0.15) and high == pytest.approx(2.0, rel=0.15)


def test_under_halving_the_work_left_is_the_plans_less_the_planned_work_done(monkeypatch, tmp_path):
    # halving plans each run at its expected epochs (here 10 of 0.1 s); rung 1 trains every run 3 epochs at twice
    # the plan: the work left is the plan's 4 s less 1.2 s done, at the learned 2x
    now = [100.0]
    monkeypatch.setattr(study.run.progress.time, "time", lambda: now[0])
    runs = [SimpleNamespace(label=f"none_{i}", seed=0, run_dir=Path(f"r{i}")) for i in range(4)]
    stream = io.StringIO()
    lines = SweepLines(_plan(0.0, 4, tmp_path), runs, stream, halving=True)
    for k, run in enumerate(runs, 1):
        for _ in range(3):
            now[0] += 0.2
            lines.on_epoch([run])
        lines.on_run(k, 4, run, "rung 1", True)
    assert lines.left() == {"none": pytest.approx(4.0 - 1.2)}
    assert lines.progress.learner.eta(lines.left())[0] == pytest.approx(2 * 2.8)
    assert "sweep: 12/40" in stream.getvalue()  # the line counts epochs, not runs
    assert "done in" not in stream.getvalue()  # the rung's last run is not the sweep's
    lines.finish()
    lines.finish()
    assert stream.getvalue().count("done in") == 1


def test_under_halving_the_epochs_a_last_rung_run_was_stopped_before_are_not_left(monkeypatch, tmp_path):
    # a run of the last rung (its whole budget: no stop_after) that the epoch rule stopped after 4 of its 10 epochs
    # leaves 6 of the plan's epochs that no rung will train: they leave the work left; a rung run's do not (the
    # two settings' one survivor: each has a chance of 1/2 at the full budget)
    import json

    now = [100.0]
    monkeypatch.setattr(study.run.progress.time, "time", lambda: now[0])
    runs = [SimpleNamespace(label=f"none_{i}", seed=0, run_dir=tmp_path / f"r{i}",
                            spec=SimpleNamespace(stop_after=3 if i == 0 else None)) for i in range(2)]
    for run in runs:
        run.run_dir.mkdir()
        (run.run_dir / "metrics.json").write_text(json.dumps({"convergence": {"stopped_early_after": 4}}))
    lines = SweepLines(_plan(0.0, 2, tmp_path, full=0.5), runs, io.StringIO(), halving=True)
    for k, run in enumerate(runs, 1):
        for _ in range(4):
            now[0] += 0.1
            lines.on_epoch([run])
        lines.on_run(k, 2, run, "trained", True)
    assert lines.left() == {"none": pytest.approx(2.0 - 0.8 - 0.6)}


def test_a_banks_runs_ending_together_are_one_unit_of_their_own_work(monkeypatch, tmp_path):
    # runs 1-3 train as one bank (their epochs together), then write their three run directories (0.2 s each, as
    # planned) before the first is reported; reported one after another in no time, they must not read as three
    # units of which two took nothing (the pace would fall to a third)
    sweep = Sweep(monkeypatch, tmp_path, runs=6, own_s=0.2)
    sweep.train(1, EPOCHS, 0.08, own_s=0.2)  # a first run alone carries the one-off units
    bank = sweep.runs[1:4]
    for _ in range(EPOCHS):
        sweep.now[0] += 3 * 0.08
        sweep.lines.on_epoch(bank)
    sweep.now[0] += 3 * 0.2
    for k, run in enumerate(bank, 2):
        sweep.lines.on_run(k, 6, run, "trained", True)
    left = sweep.lines.left()
    assert left["none"] == pytest.approx(2 * 1.0)
    assert sweep.eta() == pytest.approx(2.0)  # every epoch and run went as planned


def test_an_epoch_that_stalls_makes_the_sweep_look_at_the_load_at_once(monkeypatch, tmp_path):
    # another process takes a core while 2 threads train: the next epoch takes 4x its like epochs, and the sweep
    # looks at the load at once (not THREADS_EVERY_S later) and trains on 1 thread; epochs of usual length never look
    from study.plan.load import ThreadsForLoad

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # (an explicit count is the user's, never adjusted)
    sweep = Sweep(monkeypatch, tmp_path)
    others, looks = [0.0], []
    sweep.lines.threads = ThreadsForLoad(lambda n: None, 2, lambda: looks.append(1) or others[0], clock=lambda: 0.0)
    sweep.lines.threads.adjust()  # (its clock stands still: only a stall makes it look again)
    sweep.train(1, EPOCHS, 0.1)
    assert sweep.lines.threads.threads == 2 and len(looks) == 1
    others[0] = 1.0
    sweep.now[0] += 0.4
    sweep.lines.on_epoch([sweep.runs[1]])  # the second run's first epoch: no like epochs yet to compare with
    for _ in range(3):
        sweep.now[0] += 0.1
        sweep.lines.on_epoch([sweep.runs[1]])
    assert sweep.lines.threads.threads == 2 and len(looks) == 1
    sweep.now[0] += 0.4
    sweep.lines.on_epoch([sweep.runs[1]])
    assert sweep.lines.threads.threads == 1 and len(looks) == 2


def test_under_cv_the_final_runs_are_work_left_until_they_have_trained(monkeypatch, tmp_path):
    # one (setting, seed) of method none under selection = "cv", 2 folds: the plan's 3 s are two fold runs of 1 s
    # (10 epochs of 0.1 s) and the final run's 1 s (final_s). After the folds the sweep is not over: the final run is
    # left, at the cell's epochs (10); once it starts it counts its selected epochs (stop_after 5), and its end
    # closes the line (3 runs: the folds and the final)
    now = [100.0]
    monkeypatch.setattr(study.run.progress.time, "time", lambda: now[0])
    planned = [SimpleNamespace(label="none_a", seed=0, aux="none", k=None, options=None, epochs=None, seconds=3.0,
                               final_s=1.0)]
    plan = _plan(0.0, 0, tmp_path)
    plan.runs, plan.spec.selection = planned, "cv"
    folds = [SimpleNamespace(label="none_a", seed=0, run_dir=Path(f"fold{f}")) for f in (1, 2)]
    stream = io.StringIO()
    lines = SweepLines(plan, folds, stream)
    assert sum(lines.left().values()) == pytest.approx(3.0)
    for k, run in enumerate(folds, 1):
        for _ in range(EPOCHS):
            now[0] += 0.1
            lines.on_epoch([run])
        lines.on_run(k, 2, run, "trained", True)
    assert lines.left() == {"none": pytest.approx(1.0)}
    assert not lines.finished and "done in" not in stream.getvalue()
    final = SimpleNamespace(label="none_a", seed=0, run_dir=Path("final"), spec=SimpleNamespace(stop_after=5))
    for _ in range(2):
        now[0] += 0.1
        lines.on_epoch([final])
    assert lines.left() == {"none": pytest.approx(0.3)}
    now[0] += 0.3
    lines.on_run(1, 1, final, "trained 5 epochs, no validation", True)
    assert lines.finished and lines.left() == {}
    assert "sweep: 3/3" in stream.getvalue() and stream.getvalue().count("done in") == 1


def test_under_halving_a_full_budget_run_stopped_early_teaches_its_cells_others_and_a_cell_not_seen(monkeypatch, tmp_path):
    # halving's plan counts each run of the full budget's rung at the ceiling (10 epochs of 0.1 s). Runs 1-4 are
    # of cell (none, all), run 5 of (none, K = 1); patience 3. Run 1 stops after 4 epochs: runs 2-4 are expected to
    # stop there too (6 epochs each unspent), and run 5, of a cell not seen, halfway between (the mean of the cell
    # seen and the ceiling's 0: 3 unspent), its range from the earliest stop (epoch 4: 6 unspent) to none
    import json

    now = [100.0]
    monkeypatch.setattr(study.run.progress.time, "time", lambda: now[0])
    plan = _plan(0.0, 5, tmp_path, full=1.0, full_from=0, k=None)
    plan.runs[4].k, plan.spec.patience = 1, 3
    runs = [SimpleNamespace(label=f"none_{i}", seed=0, run_dir=tmp_path / f"r{i}", spec=SimpleNamespace(stop_after=None))
            for i in range(5)]
    lines = SweepLines(plan, runs, io.StringIO(), halving=True)
    assert lines.left() == {"none": pytest.approx(5.0)}  # no run has ended: each is expected at the ceiling
    runs[0].run_dir.mkdir()
    (runs[0].run_dir / "metrics.json").write_text(json.dumps({"convergence": {"stopped_early_after": 4}}))
    for _ in range(4):
        now[0] += 0.1
        lines.on_epoch([runs[0]])
    lines.on_run(1, 5, runs[0], "trained", True)
    assert lines.left() == {"none": pytest.approx(3 * 0.4 + 0.7)}
    low, high = lines.bounds()
    assert low == {"none": pytest.approx(3 * 0.4 + 0.4)} and high == {"none": pytest.approx(3 * 0.4 + 1.0)}
    for _ in range(2):  # run 2 under way: 2 of its expected 4 epochs done
        now[0] += 0.1
        lines.on_epoch([runs[1]])
    assert lines.left() == {"none": pytest.approx(0.2 + 2 * 0.4 + 0.7)}


def test_a_resumed_halving_survivor_counts_an_end_per_rung_it_trained_in(tmp_path):
    # rungs end at 2 and 5 epochs, the full budget at 10: a survivor that finished before this process wrote its run
    # directory 3 times (0.2 s each, 0.6 s of its 1 s) and trained 10 epochs (0.04 s each): all of it is done
    # (crediting the ends of two rungs only left 0.2 s of a finished run as work to come)
    import json

    plan = _plan(0.0, 1, tmp_path, own_s=0.2, ends=3.0, full=1.0, full_from=5, rungs=(2, 5))
    run = SimpleNamespace(label="none_0", seed=0, run_dir=tmp_path / "r0", spec=SimpleNamespace(stop_after=None))
    run.run_dir.mkdir()
    (run.run_dir / "metrics.json").write_text(json.dumps({"convergence": {"epochs_trained": EPOCHS}}))
    lines = SweepLines(plan, [run], io.StringIO(), halving=True)
    assert lines.work[run.run_dir].own_s == pytest.approx(0.6) and lines.left() == {"none": pytest.approx(0.0)}


def test_a_resumed_halving_sweep_counts_done_what_its_finished_runs_trained_from_the_start(monkeypatch, tmp_path):
    # 2 cells of 3 settings, rungs of 2 and 10 epochs of 0.1 s: each run is planned at (3 x 2 + 8) / 3 epochs, each
    # cell's one survivor training 8 more. Resumed: cell A finished before this process (rung 1, and its survivor
    # r0 stopped by the rule after 6 epochs: 4 of its 8 unspent); of cell B only rung 1 finished. Left from the
    # start: B's survivor, not seen yet, at 6 of its 8 epochs (the mean of A's share and the ceiling's), 0.6 s.
    # (Counting a finished run's whole planned work done said 0 s for the second half of a resumed sweep; counting
    # it when a rung reaches it kept A's survivor as work left until the last rung.)
    import json

    now = [100.0]
    monkeypatch.setattr(study.run.progress.time, "time", lambda: now[0])
    plan = _plan(0.0, 6, tmp_path, full=1 / 3, full_from=2)
    for i, r in enumerate(plan.runs):
        r.epochs, r.seconds, r.k = 14 / 3, 0.1 * 14 / 3, "A" if i < 3 else "B"
    runs = [SimpleNamespace(label=f"none_{i}", seed=0, run_dir=tmp_path / f"r{i}", spec=SimpleNamespace(stop_after=None))
            for i in range(6)]
    for i, run in enumerate(runs):
        run.run_dir.mkdir()
        trained = {"epochs_trained": 6, "stopped_early_after": 6} if i == 0 else {"epochs_trained": 2}
        (run.run_dir / "metrics.json").write_text(json.dumps({"convergence": trained}))
    lines = SweepLines(plan, runs, io.StringIO(), halving=True)
    assert lines.left() == {"none": pytest.approx(0.6)}
    assert lines.count == 6 + 5 * 2  # the line counts the epochs trained before too
    for k, run in enumerate(runs, 1):  # the rungs reach the runs finished before: nothing more is done
        lines.on_run(k, 6, run, "done earlier, skipped", False)
    assert lines.left() == {"none": pytest.approx(0.6)}
    survivor = SimpleNamespace(label="none_3", seed=0, run_dir=runs[3].run_dir, spec=SimpleNamespace(stop_after=None))
    for _ in range(4):
        now[0] += 0.1
        lines.on_epoch([survivor])
    assert lines.left() == {"none": pytest.approx(0.2)}


def test_the_benchmarks_oracle_tells_the_live_eta_each_runs_epochs_from_a_finished_study(monkeypatch, tmp_path):
    # benchmarks/bench_plan_load.py --oracle: each run's epochs read from a finished study of the same spec, so the
    # work left is exact from the start (4 of 10 epochs and 7 of 10, at 0.1 s each), where the study's own rule
    # counts a cell not seen yet at the plan's 10
    import json

    from benchmarks.eta_oracle import install

    monkeypatch.setattr(SweepLines, "__init__", SweepLines.__init__)  # restored after the test
    (tmp_path / "now").mkdir()
    plan = _plan(0.0, 2, tmp_path / "now")
    runs = [SimpleNamespace(label=f"none_{i}", seed=0, run_dir=tmp_path / "now" / f"r{i}") for i in range(2)]
    assert SweepLines(plan, runs, io.StringIO()).left() == {"none": pytest.approx(2.0)}
    for i, epochs in enumerate((4, 7)):
        (tmp_path / "ref" / f"r{i}").mkdir(parents=True)
        (tmp_path / "ref" / f"r{i}" / "metrics.json").write_text(json.dumps({"convergence": {"epochs_trained": epochs}}))
    install(tmp_path / "ref")
    assert SweepLines(plan, runs, io.StringIO()).left() == {"none": pytest.approx(1.1)}


def test_runs_finished_before_are_not_work_left_where_the_sweep_reaches_them_and_tell_their_cell(tmp_path):
    # a grown study: the sweep's third run finished before this process (4 of its 10 epochs, the epoch rule
    # stopped it) and comes after two runs still to train. It is not work left, and its cell's runs are expected
    # to stop alike: 2 runs x 4 epochs x 0.1 s (counting it as work left until the sweep reached it said 3 s: a
    # run retrained in a study of 12 read 10 s for its 2 s)
    import json

    runs = [SimpleNamespace(label=f"none_{i}", seed=0, run_dir=tmp_path / f"r{i}") for i in range(3)]
    runs[2].run_dir.mkdir()
    (runs[2].run_dir / "metrics.json").write_text(json.dumps({"convergence": {"epochs_trained": 4,
                                                                              "stopped_early_after": 4}}))
    lines = SweepLines(_plan(0.0, 3, tmp_path), runs, io.StringIO())
    assert lines.left() == {"none": pytest.approx(0.8)}
    for k, run in enumerate(runs[:2], 1):
        lines.on_epoch([run])
        lines.on_run(k, 3, run, "trained", True)
    assert lines.left() == {} and not lines.finished
    lines.on_run(3, 3, runs[2], "done earlier, skipped", False)
    assert lines.finished and lines.reused == 1 and lines.ended == 3
