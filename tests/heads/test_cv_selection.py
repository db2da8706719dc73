"""sweep-heads --selection cv: folds within the K labelled rows, no validation or test row before selection,
final runs on all K rows for the selected epochs, one-line refusals, resume after a kill."""

from __future__ import annotations

from tests.support.specs import spec_of

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import heads.training.experiment
from heads.cli import sweep_main
from heads.search.cv import folds_for
from heads.training.rows import assign_folds, cv_rows, split_rows
from heads.training.data import labelled_subset, stratified_split
from pipeline.errors import run_cli
from pipeline.reader import read_cache
from tests.support.synthetic import write_synthetic_cache

C, D = 4, 16
GRID = ["--aux", "linear", "--seeds", "0", "--lr", "0.03,0.3", "--labels-per-class", "2,3", "--epochs", "3",
        "--batch-size", "16", "--selection", "cv", "--quiet"]


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cv")
    kw = dict(num_classes=C, dim=D, separation=0.5, num_views=2)
    return {"train": write_synthetic_cache(d / "train.h5", "train", per_class=12, seed=0, **kw),
            "test": write_synthetic_cache(d / "test.h5", "test", per_class=5, seed=1, first_id=1000, **kw)}


def invoke(caches, out: Path, *args: str, catch: bool = False):
    argv = ["--train", str(caches["train"]), "--test", str(caches["test"]), "--out", str(out), *args]
    return CliRunner().invoke(sweep_main, argv, catch_exceptions=catch)


class Recorder:
    """Wraps heads.training.experiment's fit_heads and score_test_split: the rows each fit indexes, when the test split
    is read."""

    def __init__(self, monkeypatch, sweep_dir: Path, fail_at: int | None = None):
        self.fits: list[dict] = []
        self.scored: list[tuple[Path, bool]] = []
        fit, score = heads.training.experiment.fit_heads, heads.training.experiment.score_test_split

        def recording_fit(methods, table, train_rows, val_rows, scaler, opts, progress, first, labelled_rows, *a, **kw):
            if fail_at is not None and len(self.fits) == fail_at:
                raise RuntimeError("killed")  # a kill in the middle of a run: it stays .partial
            self.fits.append({"train": set(train_rows.tolist()), "val": set(val_rows.tolist()),
                              "labelled": set(labelled_rows.tolist()), "epochs": opts[0].epochs,
                              "stop_after": opts[0].stop_after})
            return fit(methods, table, train_rows, val_rows, scaler, opts, progress, first, labelled_rows, *a, **kw)

        def recording_score(caches, method, scaler, run_dir, *a, **kw):
            self.scored.append((run_dir, (sweep_dir / "selection.json").is_file()))
            return score(caches, method, scaler, run_dir, *a, **kw)

        monkeypatch.setattr(heads.training.experiment, "fit_heads", recording_fit)
        monkeypatch.setattr(heads.training.experiment, "score_test_split", recording_score)


@pytest.fixture(scope="module")
def swept(caches, tmp_path_factory):
    """One cv sweep, recorded: (sweep directory, recorder)."""
    out = tmp_path_factory.mktemp("cvsweep")
    with pytest.MonkeyPatch.context() as mp:
        rec = Recorder(mp, out / "s")
        result = invoke(caches, out, "--name", "s", *GRID)
    assert result.exit_code == 0, result.output
    return out / "s", rec


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_folds_are_stratified_disjoint_and_cover_the_labelled_rows():
    label = np.repeat(np.arange(6), 10)
    train, _ = stratified_split(label, 0.2, seed=5)
    labelled, _ = labelled_subset(label, train, 5, seed=5)
    fold = assign_folds(label, labelled, 3, seed=5)
    assert sorted(set(fold.tolist())) == [0, 1, 2] and len(fold) == len(labelled)  # each row in exactly one fold
    for c in range(6):  # each class's 5 rows spread as evenly as 3 folds allow
        assert sorted(np.bincount(fold[label[labelled] == c], minlength=3).tolist()) == [1, 2, 2]
    assert np.ptp(np.bincount(fold)) <= 1  # and the folds are even overall
    assert np.array_equal(fold, assign_folds(label, labelled, 3, seed=5))  # deterministic
    assert not np.array_equal(fold, assign_folds(label, labelled, 3, seed=6))  # seeded
    assert [folds_for(k, None) for k in (2, 3, 7, None)] == [2, 3, 5, 5] and folds_for(7, 4) == 4


def test_fold_and_final_rows(caches):
    cache = read_cache(caches["train"], kinds=["original"])
    base = {"seed": 2, "val_fraction": 0.25, "labels_per_class": "3", "cv_folds": 3}
    split = split_rows(cache, spec_of(base))
    held_out, k_rows = [], set(split["labelled"].tolist())
    for f in (1, 2, 3):
        rows = cv_rows(cache, spec_of({**base, "cv_fold": f}))
        val, train, labelled = (set(rows[k].tolist()) for k in ("val", "train", "labelled"))
        assert val <= k_rows and labelled == k_rows - val and not val & train
        assert np.bincount(cache.label[rows["val"]], minlength=C).tolist() == [1] * C  # one row per class per fold
        assert not (val | train) & set(split["val"].tolist())  # the carved validation rows: never touched
        held_out.append(val)
    assert set().union(*held_out) == k_rows and sum(map(len, held_out)) == len(k_rows)
    final = cv_rows(cache, spec_of({**base, "cv_fold": "final"}))
    assert not len(final["val"]) and final["labelled"].tolist() == split["labelled"].tolist()
    assert final["train"].tolist() == split["train"].tolist()


def test_no_validation_or_test_row_before_selection_and_finals_use_all_k_rows(caches, swept):
    sweep_dir, rec = swept
    cache = read_cache(caches["train"], kinds=["original"])
    split = {k: split_rows(cache, spec_of({"seed": 0, "val_fraction": 0.1, "labels_per_class": k}))
             for k in ("2", "3")}
    carved = set(split["2"]["val"].tolist())
    folds = [f for f in rec.fits if f["val"]]
    finals = [f for f in rec.fits if not f["val"]]
    assert len(folds) == 2 * (2 + 3) and len(finals) == 2  # 2 settings x (2 + 3 folds), one final per K
    for f in rec.fits:
        assert not (f["train"] | f["val"]) & carved  # no validation row trained on or validated on
    for k, f in zip(("2", "3"), finals):
        assert f["labelled"] == set(split[k]["labelled"].tolist()) and f["train"] == set(split[k]["train"].tolist())
    selection = json.loads((sweep_dir / "selection.json").read_text())
    assert selection["selection"] == "cv"
    for e, f in zip(selection["selected"], finals):
        assert f["stop_after"] == e["selected_epochs"] and f["epochs"] == 3  # the schedule of the folds, cut there
        assert e["cv_folds"] == int(e["labels_per_class"]) and e["labels_used_per_class"] == e["labels_per_class"]
        assert e["val_top1_mean"] == max(e["cv_curve"])
    # the test split is read only after selection.json exists, and only for the final runs
    assert rec.scored and all(after for _, after in rec.scored)
    finals_selected = sorted(Path(r).name for e in selection["selected"] for r in e["runs"])
    assert sorted(p.name for p, _ in rec.scored) == finals_selected
    assert all("_final_epochs=" in p.name for p, _ in rec.scored)


def test_runs_csv_and_summary_record_cv(swept):
    sweep_dir, _ = swept
    runs = read_csv(sweep_dir / "runs.csv")
    assert {r["selection"] for r in runs} == {"cv"}
    folds = [r for r in runs if r["cv_fold"] != "final"]
    assert len(folds) == 10 and all(r["val_top1"] for r in folds)
    finals = [r for r in runs if r["cv_fold"] == "final"]
    assert len(finals) == 2 and not any(r["val_top1"] for r in finals)
    assert all(r["labels_used_per_class"] == r["labels_per_class"] for r in runs)
    summary = read_csv(sweep_dir / "summary.csv")
    assert [(r["selection"], r["cv_folds"], r["labels_used_per_class"]) for r in summary] == [("cv", "2", "2"),
                                                                                             ("cv", "3", "3")]
    markdown = (sweep_dir / "summary.md").read_text()
    assert "Selection by cross-validation within the K labelled rows" in markdown and "same validation" not in markdown


@pytest.mark.parametrize("args, words", [
    (["--labels-per-class", "1,3", "--selection", "cv"], ["--selection cv", "K >= 2", "K = 1"]),
    (["--labels-per-class", "3", "--selection", "cv", "--cv-folds", "4"], ["--cv-folds 4", "--labels-per-class 3"]),
    (["--labels-per-class", "3", "--selection", "cv", "--search", "halving"], ["--search halving", "--selection cv"]),
    (["--labels-per-class", "3", "--cv-folds", "2"], ["--cv-folds", "--selection cv only"]),
    (["--labels-per-class", "all", "--selection", "cv", "--cv-folds", "12"],  # 12 rows a class, one to validation
     ["--cv-folds 12", "has 11 labelled rows at --labels-per-class all", "train.h5", "give --cv-folds 11 or fewer"]),
])
def test_refusals_are_one_line(caches, tmp_path, capsys, args, words):
    argv = ["--train", str(caches["train"]), "--test", str(caches["test"]), "--out", str(tmp_path / "o"),
            "--aux", "linear", "--quiet", *args]
    with pytest.raises(SystemExit) as exit_:
        run_cli(sweep_main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and all(w in err[0] for w in words), err[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("runs"))


def test_resume_after_a_kill_reuses_finished_fold_runs(caches, swept, tmp_path, monkeypatch):
    with monkeypatch.context() as mp:
        Recorder(mp, tmp_path / "s", fail_at=3)
        killed = invoke(caches, tmp_path, "--name", "s", *GRID, catch=True)
    assert killed.exit_code != 0 and "killed" in str(killed.exception)
    finished = sorted(p for p in (tmp_path / "s" / "runs").iterdir() if not p.name.endswith(".partial"))
    assert len(finished) == 3 and any(p.name.endswith(".partial") for p in (tmp_path / "s" / "runs").iterdir())
    stamps = {p: (p / "config.json").stat().st_mtime_ns for p in finished}
    rec = Recorder(monkeypatch, tmp_path / "s")
    again = invoke(caches, tmp_path, "--name", "s", *GRID)
    assert again.exit_code == 0, again.output
    assert again.output.count("done earlier, skipped") == 3 and len(rec.fits) == 10 - 3 + 2
    assert all((p / "config.json").stat().st_mtime_ns == t for p, t in stamps.items())
    def selected(d: Path) -> list[dict]:
        return json.loads((d / "selection.json").read_text())["selected"]

    assert selected(tmp_path / "s") == selected(swept[0])  # the same selection as the uninterrupted sweep


def poisoned(src: Path, dst: Path, rows: np.ndarray | None) -> Path:
    """A copy of a cache whose features at `rows` (all rows: None) are replaced by large noise."""
    import shutil

    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        for kind in f["features"]:
            data = f["features"][kind]
            pick = np.arange(data.shape[0]) if rows is None else rows
            noise = np.random.default_rng(9).standard_normal((len(pick), *data.shape[1:])) * 50
            data[np.sort(pick)] = noise.astype(data.dtype)
    return dst


def test_validation_and_test_rows_cannot_change_the_choice(caches, swept, tmp_path):
    """Poison the carved validation rows of the training cache and the whole test cache: the cv selection is
    the same (the test scores are not: the test split was scored); the val selection sees the poison."""
    carved = split_rows(read_cache(caches["train"], kinds=["original"]),
                        spec_of({"seed": 0, "val_fraction": 0.1, "labels_per_class": "2"}))["val"]
    bad = {"train": poisoned(caches["train"], tmp_path / "train.h5", carved),
           "test": poisoned(caches["test"], tmp_path / "test.h5", None)}
    assert invoke(bad, tmp_path, "--name", "s", *GRID).exit_code == 0
    selected = [json.loads((d / "selection.json").read_text())["selected"] for d in (swept[0], tmp_path / "s")]
    assert selected[0] == selected[1]
    tests = [[r["top1_mean"] for r in read_csv(d / "summary.csv")] for d in (swept[0], tmp_path / "s")]
    assert tests[0] != tests[1]
    val_grid = [a for a in GRID if a not in ("--selection", "cv")]
    scores = []
    for name, c in (("val-clean", caches), ("val-bad", bad)):
        assert invoke(c, tmp_path, "--name", name, *val_grid).exit_code == 0
        selection = json.loads((tmp_path / name / "selection.json").read_text())
        scores.append([e["val_top1_mean"] for e in selection["selected"]])
    assert scores[0] != scores[1]
