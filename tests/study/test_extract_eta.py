"""The extraction's live ETA follows extract-features' progress lines (study.run.stages.ExtractLines,
pipeline.progress_lines), on a synthetic clock."""

from __future__ import annotations

import io
from types import SimpleNamespace

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


def test_the_eta_learns_within_a_split_from_its_rows_leaving_the_childs_start_up_out(tmp_path):
    # the train split is planned at 10 s start-up + 100 s of rows, the test split at 110 s; the child takes 30 s to
    # start (one-off), then its rows go at twice the plan: the ETA after half the rows is 2 x (50 s + the test
    # split's 100 s of rows) + its 10 s start-up at the same pace
    clock = Clock()
    progress = Progress("extract", 2, None, io.StringIO(), eta_file=tmp_path / "eta.csv", clock=clock)
    lines = ExtractLines(progress, 0, 110.0, 110.0, SimpleNamespace(backbone_startup_s=10.0))
    clock.t += 30.0
    lines.on_rows(100, 1000)  # the first line: start-up and 10% of the rows
    for done in range(200, 600, 100):
        clock.t += 20.0  # 10% of the rows (10 s planned) in 20 s
        lines.on_rows(done, 1000)
    assert progress.learner.eta(0.5 * 100.0 + 110.0)[0] == pytest.approx(2 * 160.0)
    rows = read_eta_csv(tmp_path / "eta.csv")
    assert [r["stage"] for r in rows] == ["extract"] * len(rows) and len(rows) == 5
    assert float(rows[-1]["eta_s"]) == pytest.approx(2 * 160.0)
    clock.t += 100.0
    assert lines.rest() == pytest.approx(50.0)  # the plan's seconds of the rows not reported yet


def test_without_an_estimate_the_rows_teach_nothing_and_the_splits_go_at_their_rate(tmp_path):
    # the quick calibration does not time the backbone: no ETA of 0 s from an estimate of 0 s
    clock = Clock()
    progress = Progress("extract", 2, None, io.StringIO(), eta_file=tmp_path / "eta.csv", clock=clock)
    lines = ExtractLines(progress, 0, 0.0, 0.0, None)
    clock.t += 10.0
    lines.on_rows(500, 1000)
    assert read_eta_csv(tmp_path / "eta.csv") == []
    clock.t += 10.0
    progress.update(1, "train: done", None, lines.rest(), one_off=not lines.ticked)
    assert float(read_eta_csv(tmp_path / "eta.csv")[-1]["eta_s"]) == pytest.approx(20.0)
