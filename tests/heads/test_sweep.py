"""sweep-heads: the grid, selection on validation only, test scoring of the selection only, statistics, resume."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from heads.search import grid

from heads.results import summary
from heads.cli import sweep_main, train_main
from heads.training.metrics import metrics_from_predictions_csv
from heads.results.stats import hierarchical_bootstrap, paired_bootstrap, t_interval
from tests.support.synthetic import write_synthetic_cache

C, D, SEP = 4, 32, 0.4
GRID = ["--aux", "none,linear,pirl", "--aux-weight", "0.1,1", "--weight-decay", "5e-4",
        "--weight-decay", "linear=1e-4,1e-1", "--seeds", "0-2", "--epochs", "4", "--batch-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sweep-caches")
    kw = dict(num_classes=C, dim=D, separation=SEP)
    return {"train": write_synthetic_cache(d / "train.h5", "train", per_class=40, seed=0, **kw),
            "test": write_synthetic_cache(d / "test.h5", "test", per_class=30, seed=1, first_id=10_000, **kw)}


def invoke(command, caches, out: Path, *args: str):
    argv = ["--train", str(caches["train"]), "--test", str(caches["test"]), "--out", str(out),
            "--data-root", str(out / "no-images"), *args]
    return CliRunner().invoke(command, argv, catch_exceptions=False)


@pytest.fixture(scope="module")
def swept(caches, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweeps")
    result = invoke(sweep_main, caches, out, "--name", "s", *GRID)
    assert result.exit_code == 0, result.output
    return out / "s"


def selected(sweep_dir: Path) -> dict[str, dict]:
    """selection.json's entries by aux choice (one labels-per-class value in these sweeps)."""
    entries = json.loads((sweep_dir / "selection.json").read_text())["selected"]
    assert len({e["aux"] for e in entries}) == len(entries)
    return {e["aux"]: e for e in entries}


def runs_csv(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_grid_crosses_options_only_with_the_aux_choices_they_apply_to(swept):
    rows = runs_csv(swept)
    header = list(rows[0])
    assert "aux_weight" in header and "weight_decay" in header
    assert not any("test" in k for k in header)  # no test metrics in runs.csv
    counts = {aux: sum(r["aux"] == aux for r in rows) for aux in ("none", "linear", "pirl")}
    assert counts == {"none": 3, "linear": 2 * 3, "pirl": 2 * 3}  # none is not crossed with --aux-weight
    assert all(r["aux_weight"] == "" for r in rows if r["aux"] != "pirl")
    assert {r["weight_decay"] for r in rows if r["aux"] == "linear"} == {"0.0001", "0.1"}
    assert {r["weight_decay"] for r in rows if r["aux"] != "linear"} == {"0.0005"}
    config = json.loads((swept / rows[0]["run_dir"] / "config.json").read_text())
    assert config["options"]["aux"] == "none" and "aux_weight" not in config["options"]


def test_selection_is_the_argmin_of_mean_validation_loss_in_runs_csv(swept):
    rows = runs_csv(swept)
    selection = selected(swept)
    for aux in ("none", "linear", "pirl"):
        groups: dict[str, list[dict[str, str]]] = {}
        for r in rows:
            if r["aux"] == aux:
                groups.setdefault(r["setting"], []).append(r)
        best = min(groups, key=lambda s: (np.mean([float(r["val_loss"]) for r in groups[s]]),
                                          -np.mean([float(r["val_top1"]) for r in groups[s]])))
        assert selection[aux]["setting"] == best
        assert selection[aux]["val_top1_mean"] == pytest.approx(np.mean([float(r["val_top1"]) for r in groups[best]]))
        assert sorted(selection[aux]["seeds"]) == [0, 1, 2]


def test_test_split_is_scored_for_the_selected_runs_only(swept):
    chosen = {run for sel in selected(swept).values() for run in sel["runs"]}
    for r in runs_csv(swept):
        run = swept / r["run_dir"]
        metrics = json.loads((run / "metrics.json").read_text())
        if r["run_dir"] in chosen:
            assert metrics["test"] is not None and (run / "predictions.csv").is_file()
            assert metrics_from_predictions_csv(run / "predictions.csv") == metrics["test"]
            assert (run / "model.pt").is_file()  # the selection keeps its weights
        else:
            assert metrics["test"] is None and not (run / "predictions.csv").exists()
            assert not (run / "model.pt").exists()  # --keep-weights selected (the default)
            assert "test" not in json.loads((run / "confusion.json").read_text())


def correct_of(sweep: Path, runs: list[str]) -> np.ndarray:
    """(seeds, images) correctness of a selection's runs, in their order, from predictions.csv by hand."""
    rows = [list(csv.DictReader(open(sweep / r / "predictions.csv"))) for r in runs]
    return np.array([[float(x["pred"] == x["label"]) for x in rs] for rs in rows])


def test_summary_is_recomputed_from_predictions(swept):
    rows, markdown = summary.summarize(swept)
    with open(swept / "summary.csv", newline="") as f:
        saved = list(csv.DictReader(f))
    assert [r["aux"] for r in saved] == ["none", "linear", "pirl"]
    for row, file_row in zip(rows, saved):
        for key, value in row.items():
            if isinstance(value, float):  # nan: no interval (a side that did not learn), an empty cell
                assert (file_row[key] == "") if math.isnan(value) else float(file_row[key]) == pytest.approx(value, abs=1e-6), key
    assert (swept / "summary.md").read_text() == markdown
    # the paired difference against the same-network baseline: by default the hierarchical bootstrap, as a study's
    selection = selected(swept)  # report computes it, from the predictions by hand
    order = {aux: np.argsort(sel["seeds"]) for aux, sel in selection.items()}
    correct = {aux: correct_of(swept, [sel["runs"][i] for i in order[aux]]) for aux, sel in selection.items()}
    expected = hierarchical_bootstrap(correct["pirl"] - correct["none"], resamples=10_000, seed=0)
    runs = {aux: dict(zip(sel["seeds"], sel["runs"])) for aux, sel in selection.items()}
    iv = summary.paired_difference(swept, runs["pirl"], runs["none"])
    assert (iv.mean, iv.low, iv.high) == pytest.approx((expected.mean, expected.low, expected.high), abs=1e-9)
    assert iv.method == f"hierarchical bootstrap over 3 seeds x {C * 30} test images"
    pirl = next(r for r in saved if r["aux"] == "pirl")
    assert pirl["baseline"] == "none" and pirl["interval"] == "bootstrap"
    assert float(pirl["vs_baseline_top1_diff"]) == pytest.approx(expected.mean, abs=1e-6)
    health = {r["aux"]: r["health"] for r in saved}
    if health["pirl"] == health["none"] == "ok":
        assert (float(pirl["vs_baseline_ci_low"]), float(pirl["vs_baseline_ci_high"])) == pytest.approx(
            (expected.low, expected.high), abs=1e-6)
        assert pirl["vs_baseline_interval"] == iv.method
    else:  # a side that did not learn: never an effect, no interval in the table
        assert pirl["vs_baseline_ci_low"] == pirl["vs_baseline_ci_high"] == ""
        assert pirl["vs_baseline_interval"].startswith("not an effect: ")
    # its power: the MDE from the per-seed differences' spread, by hand with scipy's t (3 seeds), and the seeds 1 point needs
    from scipy import stats as sps

    per_seed = correct["pirl"].mean(1) - correct["none"].mean(1)
    by_hand = (sps.t.ppf(0.975, 2) + sps.t.ppf(0.8, 2)) * per_seed.std(ddof=1) / math.sqrt(3)
    assert float(pirl["vs_baseline_mde"]) == pytest.approx(by_hand, abs=1e-6)
    assert float(pirl["vs_baseline_sd_seeds"]) == pytest.approx(per_seed.std(ddof=1), abs=1e-6)
    assert float(pirl["target_effect"]) == 1.0 and "MDE (points, 80% power) | seeds for 1 point |" in markdown
    band = hierarchical_bootstrap(correct["pirl"], resamples=10_000, seed=0)  # labels.png's bar: the same kind
    assert (float(pirl["top1_ci_low"]), float(pirl["top1_ci_high"])) == pytest.approx((band.low, band.high), abs=1e-6)
    assert float(pirl["chance_top1"]) == pytest.approx(1 / C) and f"Chance: {100 / C:.2f}% top-1" in markdown
    assert "**Intervals**: 95%, a hierarchical bootstrap" in markdown
    assert "validation only" in markdown and "pirl" in markdown and "none (same network" in markdown
    assert (swept / "sweep.png").stat().st_size > 10_000


def test_a_t_summary_is_computed_over_three_seeds_and_refused_below(swept, tmp_path):
    """interval "t": Student's t over the seeds' differences (by hand from metrics.json); over fewer than 3 seeds
    no bounds are printed, the summary says it cannot be computed."""
    selection = selected(swept)
    top1 = {aux: dict(zip(sel["seeds"], (json.loads((swept / r / "metrics.json").read_text())["test"]["top1"]
                                         for r in sel["runs"]))) for aux, sel in selection.items()}
    diffs = [top1["pirl"][s] - top1["none"][s] for s in (0, 1, 2)]
    runs = {aux: dict(zip(sel["seeds"], sel["runs"])) for aux, sel in selection.items()}
    iv = summary.paired_difference(swept, runs["pirl"], runs["none"], "t")
    half = 4.302652729749464 * np.std(diffs, ddof=1) / math.sqrt(3)  # t_{0.975, 2}
    assert (iv.mean, iv.low, iv.high) == pytest.approx((np.mean(diffs), np.mean(diffs) - half, np.mean(diffs) + half),
                                                       abs=1e-9)
    assert iv.method == "t over 3 seeds" and "Student's t over the seeds" in summary.summarize(swept, "t")[1]
    import shutil

    two = tmp_path / "two"  # the same sweep with its third seed dropped from the selection
    shutil.copytree(swept, two)
    chosen = json.loads((two / "selection.json").read_text())
    for e in chosen["selected"]:  # (marked as learned: this is about the interval, not the health check)
        keep = [i for i, s in enumerate(e["seeds"]) if s != 2]
        e["seeds"], e["runs"] = [e["seeds"][i] for i in keep], [e["runs"][i] for i in keep]
        e["health"] = ["ok"] * len(keep)
    (two / "selection.json").write_text(json.dumps(chosen))
    rows, markdown = summary.write_summary(two, "t")
    pirl = next(r for r in csv.DictReader(open(two / "summary.csv")) if r["aux"] == "pirl")
    assert pirl["vs_baseline_ci_low"] == pirl["vs_baseline_ci_high"] == "" and pirl["vs_baseline_top1_diff"]
    assert pirl["vs_baseline_interval"] == "t over 2 seeds: cannot be computed (needs at least 3 seeds)"
    line = next(x for x in markdown.splitlines() if x.startswith("| pirl | none"))
    assert "| cannot be computed | t over 2 seeds" in line and "[" not in line


def test_t_interval_and_bootstrap_on_constructed_cases():
    iv = t_interval([0.01, 0.02, 0.03])
    half = 4.302652729749464 * 0.01 / math.sqrt(3)
    assert (iv.mean, iv.low, iv.high, iv.n) == pytest.approx((0.02, 0.02 - half, 0.02 + half, 3))
    with pytest.raises(ValueError):
        t_interval([0.5])
    ones, zeros = np.ones(50), np.zeros(50)
    iv = paired_bootstrap(ones, zeros)
    assert (iv.low, iv.high) == (1.0, 1.0)  # always right vs always wrong: no spread
    rng = np.random.default_rng(0)
    a = (rng.random(4000) < 0.7).astype(float)
    b = np.where(rng.random(4000) < 0.5, a, (rng.random(4000) < 0.6).astype(float))  # paired with a
    iv = paired_bootstrap(a, b, resamples=4000)
    d = a - b
    normal = 1.959964 * d.std(ddof=1) / math.sqrt(len(d))
    assert iv.mean == pytest.approx(d.mean())
    assert iv.low == pytest.approx(d.mean() - normal, abs=0.15 * normal)
    assert iv.high == pytest.approx(d.mean() + normal, abs=0.15 * normal)


def test_single_seed_uses_the_bootstrap_over_test_images_only(caches, tmp_path):
    result = invoke(sweep_main, caches, tmp_path, "--name", "one", "--aux", "none,pirl", "--seeds", "3",
                    "--epochs", "2", "--batch-size", "64", "--quiet")
    assert result.exit_code == 0, result.output
    sweep = tmp_path / "one"
    runs = {aux: dict(zip(sel["seeds"], sel["runs"])) for aux, sel in selected(sweep).items()}
    iv = summary.paired_difference(sweep, runs["pirl"], runs["none"])  # one seed: the test images' noise only
    assert iv.method == f"hierarchical bootstrap over 1 seed x {C * 30} test images" and iv.low < iv.high
    a, b = (correct_of(sweep, [runs[aux][3]])[0] for aux in ("pirl", "none"))
    images = paired_bootstrap(a, b, resamples=10_000, seed=0)  # the same interval to resampling noise
    assert iv.mean == pytest.approx(images.mean) and (iv.low, iv.high) == pytest.approx((images.low, images.high), abs=0.02)
    with open(sweep / "summary.csv", newline="") as f:
        pirl = next(r for r in csv.DictReader(f) if r["aux"] == "pirl")
    assert float(pirl["vs_baseline_top1_diff"]) == pytest.approx(iv.mean, abs=1e-6)


def test_rerun_resumes_skipping_finished_runs(caches, tmp_path):
    args = ("--name", "r", "--aux", "none,pirl", "--aux-weight", "0.1,1", "--seeds", "0,1", "--epochs", "2",
            "--batch-size", "64", "--quiet")
    assert invoke(sweep_main, caches, tmp_path, *args).exit_code == 0
    root = tmp_path / "r"
    rows = runs_csv(root)
    stamps = {r["run_dir"]: (root / r["run_dir"] / "history.csv").stat().st_mtime_ns for r in rows}
    # an interrupted run: its directory is still .partial, the finished one is gone
    victim = root / rows[-1]["run_dir"]
    victim.rename(victim.with_name(victim.name + ".partial"))
    again = invoke(sweep_main, caches, tmp_path, *args)
    assert again.exit_code == 0, again.output
    assert again.output.count("done earlier, skipped") == len(rows) - 1
    for r in rows:
        mtime = (root / r["run_dir"] / "history.csv").stat().st_mtime_ns
        assert (mtime == stamps[r["run_dir"]]) == (r["run_dir"] != rows[-1]["run_dir"])
    assert not victim.with_name(victim.name + ".partial").exists()
    assert [r["val_top1"] for r in runs_csv(root)] == [r["val_top1"] for r in rows]  # redone identically
    # a different grid under the same name is refused, naming what changed
    changed = invoke(sweep_main, caches, tmp_path, *args[:-5], "--epochs", "3", "--batch-size", "64", "--quiet")
    assert changed.exit_code == 2 and "grid.none.epochs ([2] before, [3] now)" in changed.output


def test_a_sweep_run_is_the_train_heads_run(caches, swept, tmp_path):
    """One function runs one experiment: the same options give the same validation history."""
    result = invoke(train_main, caches, tmp_path, "--aux", "pirl", "--aux-weight", "0.1", "--seed", "1",
                    "--epochs", "4", "--batch-size", "64", "--quiet")
    assert result.exit_code == 0, result.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    mine = json.loads((run / "metrics.json").read_text())
    theirs = json.loads((swept / "runs" / "pirl_aux-weight=0.1_seed=1" / "metrics.json").read_text())
    assert mine["val"] == theirs["val"] and mine["best_epoch"] == theirs["best_epoch"]


@pytest.mark.parametrize("args, words", [
    (["--aux", "none", "--aux-weight", "0.1,1"], "--aux-weight"),
    (["--aux", "none,pirl", "--aux-weight", "none=0.1"], "--aux-weight: does not apply to method none"),
    (["--aux", "pirl", "--aux-weight", "dcl=0.1"], "'dcl' is not among --aux"),
    (["--aux", "none,fancy"], "--aux"),
    (["--seeds", "2-0"], "--seeds"),
    (["--lr", "0.1,-1"], "--lr"),
    (["--val-fraction", "0"], "--val-fraction"),
])
def test_bad_grids_are_one_line(caches, tmp_path, args, words):
    result = invoke(sweep_main, caches, tmp_path, *args)
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
    assert result.exit_code == 2 and len(lines) == 1 and words in lines[0], result.output
    assert not (tmp_path / "no-images").exists() and not any(tmp_path.iterdir())


def test_parse_seeds():
    assert grid.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert grid.parse_seeds("3,1,3,5-6") == [3, 1, 5, 6]
