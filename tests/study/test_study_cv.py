"""selection = "cv" in a study: cross-validation within the K labelled rows (heads.search.cv) chooses each method's
setting and epochs, the final runs are the only ones scored, and the report counts K labels per class."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from heads.training.metrics import metrics_from_predictions_csv
from pipeline.errors import PipelineError
from study.plan.estimates import cv_run_counts
from study.plan.make import make_plan
from study.plan.text import describe
from study.spec import load_spec

from tests.study.conftest import write_matching_caches, write_spec
from tests.support.report import method_row


def cv_spec(tmp_path, study_root, extra: str = 'selection = "cv"\ncv_folds = 2', ks=(2, "all")):
    return write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", methods=("none", "linear"),
                      ks=ks, seeds=(0, 1), extra_heads=extra, grid="[grid.linear]\nweight-decay = [1e-4, 1e-2]\n")


@pytest.mark.parametrize("extra, ks, message", [
    ('selection = "cv"', (1, 2), '[heads] selection: selection = "cv": needs labels_per_class K >= 2'),
    ('selection = "cv"\ncv_folds = 3', (2,), "[heads] selection: cv_folds 3: more folds than the 2 labelled rows"),
    ('selection = "cv"\nsearch = "halving"', (2,), '[heads] selection: search halving: not supported'),
    ("cv_folds = 2", (2,), '[heads] cv_folds: is for selection = "cv"'),
])
def test_cv_conditions_are_one_line_naming_the_key(tmp_path, study_root, extra, ks, message):
    path = cv_spec(tmp_path, study_root, extra, ks)
    with pytest.raises(PipelineError) as e:
        load_spec(path)
    assert str(e.value).startswith(str(path)) and message in str(e.value) and "\n" not in str(e.value)


def test_plan_counts_fold_and_final_runs(tmp_path, study_root):
    plan = make_plan(load_spec(cv_spec(tmp_path, study_root)))
    assert len(plan.runs) == 2 * 2 * (1 + 2)  # K x seeds x (none + 2 linear settings)
    assert cv_run_counts(plan) == (2 * len(plan.runs), 2 * 2 * 2)  # 2 folds each; one final per method, K, seed
    assert "24 fold runs, then 8 final runs on all K rows" in describe(plan)


def test_a_cross_validated_study_scores_only_the_final_runs_and_counts_k_labels(tmp_path, study_root):
    spec = cv_spec(tmp_path, study_root)
    write_matching_caches(spec)
    code = "import sys; from study.cli import run_study; run_study(sys.argv[1], None)"
    proc = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    closing = [i for i, line in enumerate(lines) if line.startswith("sweep: done")]
    finals_trained = [i for i, line in enumerate(lines) if "_final_epochs=" in line and line.startswith("sweep: ")]
    assert len(closing) == 1 and "(32 runs" in lines[closing[0]]  # the sweep's line counts 24 fold and 8 final runs
    assert len(finals_trained) == 8 and max(finals_trained) < closing[0]  # and closes after the final runs
    out = tmp_path / "out"
    selection = json.loads((out / "sweep" / "selection.json").read_text())
    assert selection["selection"] == "cv"
    finals = {r for e in selection["selected"] for r in e["runs"]}
    assert finals and all("_final_epochs=" in r for r in finals)
    scored = {p.parent.name for p in (out / "sweep" / "runs").glob("*/predictions.csv")}
    assert scored == {r.split("/")[-1] for r in finals}  # no fold run ever saw the test split
    folds = list((out / "sweep" / "runs").glob("*_fold=*"))
    assert len(folds) == 2 * 2 * 3 * 2
    linear = [json.loads((f / "metrics.json").read_text()) for f in folds if f.name.startswith("linear_")]
    assert linear and not any("bank" in m["timing"] for m in linear)  # each fold trains on its own rows, alone
    report = (out / "report.md").read_text()
    assert "Selection by cross-validation within the K labelled rows" in report
    protocol = report.split("## Protocol")[1].split("## Results")[0]
    assert "| 2 | 2 | 0 | 2 | 6 |" in protocol  # K = 2 of 3 classes: 6 labels in all, no validation row
    for entry in selection["selected"]:
        top1 = np.mean([metrics_from_predictions_csv(out / "sweep" / r / "predictions.csv")["top1"] for r in entry["runs"]])
        section = report.split(f"### K = {entry['labels_per_class']}")[1].split("##")[0]
        line = method_row(section, entry["aux"])
        assert f"| {100 * top1:.2f} ± " in line


def test_more_folds_than_a_classes_labelled_rows_at_k_all_is_one_line_before_any_run(tmp_path, study_root):
    spec = cv_spec(tmp_path, study_root, 'selection = "cv"\ncv_folds = 5', ks=("all",))  # 5 train rows, 1 to validation
    write_matching_caches(spec)
    proc = subprocess.run([sys.executable, "-m", "study", str(spec), "--skip-disk-check"], capture_output=True,
                          text=True, timeout=300)
    err = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "[heads] cv_folds 5: class" in err[0] and "has 4 labelled rows at labels_per_class all" in err[0]
    assert "give [heads] cv_folds 4 or fewer" in err[0]
    assert not list((tmp_path / "out" / "sweep" / "runs").glob("*"))
