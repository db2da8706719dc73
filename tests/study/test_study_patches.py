"""`study SPEC` end to end with PIRL in the paper's form, on caches with the patches view written without
TensorFlow (tests.study.conftest): caches -> sweep -> selection on validation -> test scoring -> report.

`pirl-form` is a [grid] key, so with ["report", "paper"] the two forms are two settings of pirl: both are trained
for every K and seed (two rows of runs.csv), selection compares them on validation ("best of 2") and only the
selected form is scored on the test split; the report has one pirl row per K, naming the form when it is not
the default. With ["paper"] alone the pirl row is the paper form."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from heads.training.metrics import metrics_from_predictions_csv
from pipeline.reader import read_cache
from study.spec import load_spec

from tests.study.conftest import DIM, write_matching_caches, write_spec
from tests.support.report import method_row

NO_TF = ("import sys; from study.cli import run_study; run_study(sys.argv[1], None); "
         "print('TF-LOADED' if 'tensorflow' in sys.modules else 'TF-ABSENT')")


def run_study(spec: Path) -> None:
    """The whole study in a fresh process; it must finish without ever importing TensorFlow."""
    proc = subprocess.run([sys.executable, "-c", NO_TF, str(spec)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TF-ABSENT" in proc.stdout


def runs_csv(out: Path) -> list[dict[str, str]]:
    with open(out / "sweep" / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def config_of(out: Path, run_dir: str) -> dict:
    return json.loads((out / "sweep" / run_dir / "config.json").read_text())


def report_row(report: str, k: str, aux: str) -> str:
    section = report.split(f"### K = {k}")[1].split("\n## ")[0]
    return method_row(section, aux)


def assert_patches_cache(path: Path, spec) -> None:
    """The cache holds the patches view at the spec's geometry: (N, V, G*G, D) float16, permutations, offsets."""
    cache = read_cache(path)
    views = cache.config["views"]
    _cell, patch, jitter = spec.patch_geometry()
    assert "patches" in views["kinds"]
    assert (views["patch_grid"], views["patch_size"], views["patch_jitter"]) == (spec.patch_grid, patch, jitter)
    n, v, k = len(cache), spec.num_views, spec.patch_grid ** 2
    assert cache.features["patches"].shape == (n, v, k, DIM) and cache.features["patches"].dtype == np.float16
    assert cache.permutations["patches"].shape == (n, v, k) and cache.offsets["patches"].shape == (n, v, k, 2)


def assert_numbers_recompute(out: Path, report: str, selection: dict) -> None:
    """Each selected entry's report row shows the mean over seeds of the test top-1 its predictions.csv give."""
    for entry in selection["selected"]:
        top1 = np.mean([metrics_from_predictions_csv(out / "sweep" / r / "predictions.csv")["top1"]
                        for r in entry["runs"]])
        assert f"| {100 * top1:.2f} ± " in report_row(report, str(entry["labels_per_class"]), entry["aux"])


def best_setting(rows: list[dict[str, str]]) -> str:
    """The validation rule recomputed from runs.csv: highest mean top-1 over seeds, then lower mean loss."""
    by: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["setting"], []).append(r)
    key = {s: (np.mean([float(r["val_top1"]) for r in rs]), -np.mean([float(r["val_loss"]) for r in rs]))
           for s, rs in by.items()}
    return max(key, key=key.get)


def test_both_pirl_forms_are_trained_compared_on_validation_and_the_selected_one_scored(tmp_path, study_root):
    out = tmp_path / "out"
    path = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", out, methods=("none", "pirl"),
                      ks=(1, "all"), epochs=2, grid='pirl-form = ["report", "paper"]\n')
    spec = load_spec(path)
    write_matching_caches(path)
    run_study(path)
    for split in ("train", "test"):
        assert_patches_cache(tmp_path / "f" / f"{split}.h5", spec)
    rows = runs_csv(out)
    assert len(rows) == 2 * (1 + 2)
    pirl = [r for r in rows if r["aux"] == "pirl"]
    for k in ("1", "all"):
        assert sorted(r["pirl_form"] for r in pirl if r["labels_per_class"] == k) == ["paper", "report"]
    for r in pirl:  # each run trained the form its row says, on the cache with the patches view
        config = config_of(out, r["run_dir"])
        assert config["options"]["pirl_form"] == r["pirl_form"]
        assert config["train_cache"]["path"] == str(tmp_path / "f" / "train.h5")
        assert "patches" in config["builder_options"]["views"]["kinds"]
        assert ("head_patch" in config["model"]) == (r["pirl_form"] == "paper")
    selection = json.loads((out / "sweep" / "selection.json").read_text())
    report = (out / "report.md").read_text()
    chosen = {rel for e in selection["selected"] for rel in e["runs"]}
    for entry in (e for e in selection["selected"] if e["aux"] == "pirl"):
        k = str(entry["labels_per_class"])
        assert entry["candidates"] == 2  # the two forms, compared on validation only
        assert entry["setting"] == best_setting([r for r in pirl if r["labels_per_class"] == k])
        form = config_of(out, entry["runs"][0])["options"]["pirl_form"]
        row = report_row(report, k, "pirl")
        assert "best of 2" in row and ("pirl-form=paper" in row) == (form == "paper")
    for r in rows:  # the test split scored for the selected form's runs only
        assert (out / "sweep" / r["run_dir"] / "predictions.csv").is_file() == (r["run_dir"] in chosen)
    assert_numbers_recompute(out, report, selection)
    assert "original, jigsaw x 2, patches x 2" in report and "patches 3 x 3 crops of 16 px (jitter 5 px)" in report


def test_the_paper_form_alone_is_the_pirl_row_and_its_model_scores_again_from_its_files(tmp_path, study_root):
    out = tmp_path / "out"
    path = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", out, methods=("none", "pirl"), epochs=1,
                      grid='pirl-form = ["paper"]\n')
    path.write_text(path.read_text().replace("[views]\n", "[views]\npatch_size = 12\npatch_jitter = 3\n"))
    spec = load_spec(path)
    write_matching_caches(path)
    run_study(path)
    assert_patches_cache(tmp_path / "f" / "train.h5", spec)
    assert "jigsaw" not in read_cache(tmp_path / "f" / "train.h5").config["views"]["kinds"]
    selection = json.loads((out / "sweep" / "selection.json").read_text())
    (entry,) = [e for e in selection["selected"] if e["aux"] == "pirl"]
    run = out / "sweep" / entry["runs"][0]
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["pirl_form"] == "paper" and "head_patch" in config["model"]
    report = (out / "report.md").read_text()
    assert "pirl-form=paper" in report_row(report, "all", "pirl")
    assert "patches 3 x 3 crops of 12 px (jitter 3 px)" in report and "--pirl-form paper" in report
    assert_numbers_recompute(out, report, selection)
    check = subprocess.run([sys.executable, "-c", "from heads.cli import evaluate_cli; evaluate_cli()", str(run)],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and "matches metrics.json" in check.stdout, check.stderr[-1000:]


def test_a_cache_without_the_patches_view_is_refused_with_the_differences(tmp_path, study_root):
    report_form = write_spec(tmp_path / "r.toml", study_root, tmp_path / "f", tmp_path / "out")
    write_matching_caches(report_form)  # caches for the report's form only: original + jigsaw
    path = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out",
                      grid='pirl-form = ["report", "paper"]\n')
    proc = subprocess.run([sys.executable, "-m", "study", str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert str(tmp_path / "f" / "train.h5") in proc.stderr
    kinds = "views.kinds (['original', 'jigsaw'] in the cache, ['original', 'jigsaw', 'patches'] in the spec)"
    assert kinds in proc.stderr
    assert "views.patch_size (None in the cache, 16 in the spec)" in proc.stderr
    assert not (tmp_path / "out" / "sweep").exists()
