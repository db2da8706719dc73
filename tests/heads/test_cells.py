"""The cell (heads.cells.Cell: one method at one K) keys every grouping of a sweep's files: a planned run's cell is
its runs.csv row's, selection groups runs by cell, and K sorts 1, 5, all wherever a table lists it."""

from __future__ import annotations

from pathlib import Path

from heads.cells import Cell, k_text
from heads.options import EXPERIMENT_OPTIONS
from heads.results.runs import RunRow, read_runs_csv, write_runs_csv
from heads.results.summary import _label_efficiency_table
from heads.search.grid import SweepPlan, plan_sweep
from heads.results.selection import select

METHODS = ("none", "linear")


def plan(tmp_path: Path) -> SweepPlan:
    """Two methods, two learning rates, K in the order all, 5, 1 (not sorted), one seed."""
    options = {o.name: () if o.sweepable else o.default for o in EXPERIMENT_OPTIONS}
    options.update(aux=METHODS, seeds="0", lr=("0.1,0.2",), labels_per_class=("all,5,1",), epochs=("1",),
                   name="s", out=str(tmp_path), standardize=True)
    return plan_sweep(options)


def runs_csv(p: SweepPlan) -> list[dict[str, str]]:
    """runs.csv of the plan's runs as if each had trained (validation loss: its lr, so lr 0.1 wins), read back."""
    rows = [RunRow(r.setting.aux, r.label, r.setting.options, r.seed, r.run_dir, 1, 0.5, r.spec.options.lr, 0.0,
                   "done") for r in p.runs]
    p.sweep_dir.mkdir(parents=True)
    write_runs_csv(p.sweep_dir / "runs.csv", rows, p.swept)
    return read_runs_csv(p.sweep_dir / "runs.csv")


def test_a_runs_csv_row_has_its_planned_runs_cell(tmp_path):
    p = plan(tmp_path)
    rows = runs_csv(p)
    assert [Cell.of_row(row) for row in rows] == [r.spec.cell for r in p.runs]
    assert {r.spec.cell for r in p.runs} == {Cell(m, k) for m in METHODS for k in (1, 5, None)}


def test_selection_groups_runs_by_cell_and_k_sorts_numbers_then_all(tmp_path):
    selected = select(runs_csv(plan(tmp_path)))
    cells = [Cell.of_row(e) for e in selected]
    assert sorted(cells, key=lambda c: c.order(METHODS)) == [Cell(m, k) for k in (1, 5, None) for m in METHODS]
    for cell, e in zip(cells, selected):  # each cell compared its own two settings, and kept the lower loss
        assert e["candidates"] == 2 and e["setting"] == f"{cell.method}_lr=0.1_labels-per-class={cell.k_text}"
        assert e["labels_per_class"] == cell.k_text  # selection.json's K as the files write it
    rows = [{"aux": m, "labels_per_class": k_text(k), "top1_mean": 0.5, "top1_std": 0.0} for m in METHODS
            for k in (None, 5)]
    table = _label_efficiency_table({"auxes": list(METHODS)}, rows, [None, 5, 1])
    assert table[3:] == ["| method | 1 | 5 | all |", "|---|---|---|---|", "| none | – | 50.00 ± 0.00 | 50.00 ± 0.00 |",
                         "| linear | – | 50.00 ± 0.00 | 50.00 ± 0.00 |"]
