"""The extraction's live ETA follows extract-features' progress lines (study.run.stages.ExtractLines,
pipeline.progress_lines), on a synthetic clock."""

from __future__ import annotations

import io

import pytest

from pipeline.progress_lines import parse_progress_line, progress_line
from study.run.progress import Progress, read_eta_csv
from study.run.stages import ExtractLines


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_progress_line_reads_back_and_other_lines_do_not():
    assert parse_progress_line(progress_line(128, 5994) + "\n") == (128, 5994)
    assert parse_progress_line("/data/train.h5: 5994 images, 23 inputs each") is None
    assert parse_progress_line("progress rows 12/") is None


PARTS = {"start-up": 10.0, "rows": 100.0, "finish": 2.0}  # a split as the plan sees it


def _progress(tmp_path, clock) -> Progress:
    return Progress("extract", 2, None, io.StringIO(), eta_file=tmp_path / "eta.csv", clock=clock, first_one_off=False)


def test_the_eta_learns_each_part_within_a_split_from_its_rows(tmp_path):
    # the train split is planned at 10 s of start-up + 100 s of rows + 2 s of finish, the test split the same. The
    # child takes 20 s to start (2x its plan, with the first 10% of rows), then its rows go at 1.5x the plan: the
    # ETA after half the rows is the rows left (50 s + the test's 100 s) at 1.5x, the test's start-up at 2x and
    # both finishes, not seen yet, at the pace of all the work so far (100 s for 60 s planned)
    clock = Clock()
    progress = _progress(tmp_path, clock)
    lines = ExtractLines(progress, 0, dict(PARTS), dict(PARTS))
    clock.t += 20.0 + 10.0 * 2.0
    lines.on_rows(100, 1000)  # the first line: start-up and 10% of the rows
    for done in range(200, 600, 100):
        clock.t += 15.0  # 10% of the rows (10 s planned) in 15 s
        lines.on_rows(done, 1000)
    eta = progress.learner.eta(lines.left())[0]
    assert eta == pytest.approx(1.5 * 150.0 + 2.0 * 10.0 + 100.0 / 60.0 * 4.0)
    rows = read_eta_csv(tmp_path / "eta.csv")
    assert [r["stage"] for r in rows] == ["extract"] * len(rows) and len(rows) == 5
    assert lines.rest() == {"start-up": 0.0, "rows": pytest.approx(50.0), "finish": 2.0}


def test_the_first_splits_finish_corrects_the_next_ones(tmp_path):
    # the plan put a split's finish (its views figure, the child's exit) at 2 s; the train split's took 6 s: the
    # test split, not started, is expected with a 6 s finish (its start-up and rows as planned, as the train's went)
    clock = Clock()
    progress = _progress(tmp_path, clock)
    lines = ExtractLines(progress, 0, dict(PARTS), dict(PARTS))
    clock.t += 20.0
    lines.on_rows(100, 1000)
    for done in range(200, 1100, 100):
        clock.t += 10.0
        lines.on_rows(done, 1000)
    clock.t += 6.0
    lines.ended("train: done")
    assert progress.learner.eta(dict(PARTS))[0] == pytest.approx(10.0 + 100.0 + 6.0, rel=0.02)


def test_without_an_estimate_the_rows_teach_nothing_and_the_splits_go_at_their_rate(tmp_path):
    # the quick calibration does not time the backbone: no ETA of 0 s from an estimate of 0 s
    clock = Clock()
    progress = _progress(tmp_path, clock)
    lines = ExtractLines(progress, 0, None, None)
    clock.t += 10.0
    lines.on_rows(500, 1000)
    assert read_eta_csv(tmp_path / "eta.csv") == []
    clock.t += 10.0
    lines.ended("train: done")
    assert float(read_eta_csv(tmp_path / "eta.csv")[-1]["eta_s"]) == pytest.approx(20.0)


def test_the_plan_times_an_extraction_in_its_parts_the_finish_included(monkeypatch):
    # the probe's first figure (0.7 s) and its exit (its wall beyond its JSON line: 0.5 s) make the finish; the
    # extraction's estimate is start-up + rows + finish
    import json
    import subprocess

    import study.plan.calibrate as calibrate
    from study.plan.costs import Calibration, extraction_parts

    ticks = iter([100.0, 104.0, 104.0])  # the probe started, ended; the calibration's own total
    monkeypatch.setattr(calibrate.time, "perf_counter", lambda: next(ticks))
    said = {"inputs_per_s": 50.0, "startup_s": 2.0, "figure_s": 0.7, "elapsed_s": 3.5}
    monkeypatch.setattr(calibrate.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, json.dumps(said) + "\n", ""))
    cal = calibrate.probe_backbone([], Calibration())
    assert cal.backbone_finish_s == pytest.approx(0.7 + (4.0 - 3.5))
    parts = extraction_parts(100, 2.0, cal, 1.0)
    assert parts == {"start-up": 2.0, "rows": pytest.approx(4.0), "finish": pytest.approx(1.2)}
