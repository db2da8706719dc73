"""The sweep's running ETA: the plan's estimates of the runs left, refitted by how the runs trained here went."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import study.run.progress
from study.plan.costs import Calibration
from study.run.progress import read_eta_csv
from study.run.stages import SweepLines


def _plan(first_run_s: float, runs: int, out: Path) -> SimpleNamespace:
    planned = [SimpleNamespace(label=f"none_{i}", seed=0, seconds=1.0) for i in range(runs)]
    spec = SimpleNamespace(selection="validation", out=out)
    return SimpleNamespace(runs=planned, spec=spec, calibration=Calibration(first_run_s=first_run_s))


def _eta_after_first_run(monkeypatch, tmp_path, first_run_s: float, took: float) -> str:
    now = [100.0]
    monkeypatch.setattr(study.run.progress.time, "time", lambda: now[0])
    runs = [SimpleNamespace(label=f"none_{i}", seed=0, run_dir=Path(f"r{i}")) for i in range(4)]
    stream = io.StringIO()
    lines = SweepLines(_plan(first_run_s, 4, tmp_path), runs, stream)
    now[0] += took
    lines.on_run(1, 4, runs[0], "trained", True)
    return stream.getvalue().split("ETA ")[1].split()[0:2]


def test_the_first_runs_one_off_set_up_does_not_inflate_the_eta(monkeypatch, tmp_path):
    # 4 runs of 1 s each; the first also pays 3 s of the process's set-up, as the calibration said: it went as
    # planned, so the 3 runs left take 3 s (counting the set-up against the first run alone would say 12 s)
    assert _eta_after_first_run(monkeypatch, tmp_path, first_run_s=3.0, took=4.0) == ["3", "s"]


def test_the_eta_refits_when_the_runs_go_slower_than_planned(monkeypatch, tmp_path):
    # no set-up, and the first run took twice its estimate: the runs left are expected at twice theirs
    assert _eta_after_first_run(monkeypatch, tmp_path, first_run_s=0.0, took=2.0) == ["6", "s"]


def test_the_sweeps_etas_go_to_eta_csv_with_the_time_that_truly_remained(monkeypatch, tmp_path):
    now = [100.0]
    monkeypatch.setattr(study.run.progress.time, "time", lambda: now[0])
    runs = [SimpleNamespace(label=f"none_{i}", seed=0, run_dir=Path(f"r{i}")) for i in range(4)]
    lines = SweepLines(_plan(0.0, 4, tmp_path), runs, io.StringIO())
    for k, run in enumerate(runs, 1):
        now[0] += 2.0  # every run takes twice its plan
        lines.on_run(k, 4, run, "trained", True)
    rows = read_eta_csv(tmp_path / "eta.csv")
    assert [(r["stage"], r["done"]) for r in rows] == [("sweep", str(k)) for k in range(1, 5)]
    assert [float(r["true_left_s"]) for r in rows] == [6.0, 4.0, 2.0, 0.0]
    assert [float(r["eta_s"]) for r in rows] == [6.0, 4.0, 2.0, 0.0]  # learned the 2x from the first run on
