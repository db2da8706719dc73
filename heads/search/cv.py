"""`sweep-heads --selection cv`: select by stratified cross-validation within the K labelled rows of each class.

With `--selection val` a point at K uses K training labels plus the validation rows' labels per class.
With `cv` only the K labelled rows are ever labelled:

    rows     the training split is split as with `val` (`heads.training.experiment.split_rows`: the same carved
             validation rows, the same K labelled rows for a seed) and the carved validation rows are then
             left out of everything: no training (not even unlabelled), no standardisation, no selection
    folds    each class's labelled rows, in a seeded order, are dealt to F folds (one deal continuing over
             the classes, so the folds stay even); fold f holds out its rows and trains on the other folds'
             labelled rows plus the unlabelled rows; its held-out top-1 is recorded after every epoch
    select   per aux choice and K, each setting's curve is the held-out top-1 pooled over the folds (every
             labelled row counted once), averaged over seeds; the setting with the best epoch on its curve
             wins (ties: lower pooled loss, then grid order), with that epoch count
    finals   the selected setting retrains on all K labelled rows (and the unlabelled rows) per seed, with no
             validation, for the selected epochs of the same --epochs schedule (the loop stops there); only
             these runs are scored on the test split, once, after selection

Fold and final runs are ordinary run directories (`<setting>_seed=S_cv=F_fold=f`, `..._cv=F_final_epochs=E`),
written under .partial and renamed, so a killed sweep resumes: finished fold runs are read back.
The step that trains one of them is `run_cv_experiment`; `heads.search.sweep.train_planned_run` sends a run
there when its options say `selection: cv`, so workers and the study train them like any run.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.errors import PipelineError

from heads.training import artifacts
from heads.training.data import parse_labels_per_class, split_counts
from heads.training.health import learned, state_of
from heads.options import CONDITIONS, DEFAULT_CV_FOLDS

CV_SELECTION_RULE = ("for each aux choice and labels per class, stratified F-fold cross-validation within the K "
                     "labelled rows of each class: each setting's held-out top-1 after every epoch, pooled over the "
                     "folds and averaged over seeds; the setting with the best epoch wins (ties: lower pooled loss, "
                     "then grid order) and retrains on all K labelled rows for that many epochs, one final run per "
                     "seed; the validation rows were not used; the test split was scored after selection, for the "
                     "final runs only")
FOLD_EPOCH_RULE = "cross-validation fold: the held-out fold's top-1 after every epoch (history.csv); no epoch chosen"
FINAL_EPOCH_RULE = "cross-validation final run: no validation rows; the epoch count chosen by cross-validation"


def is_cv(options: dict[str, Any]) -> bool:
    """Whether a run's options make it a cross-validation run (a fold or a final run)."""
    return options.get("selection") == "cv"


def folds_for(labels_per_class: Any, cv_folds: int | None) -> int:
    """F for one K: --cv-folds, or min(K, 5) (5 for 'all')."""
    if cv_folds:
        return int(cv_folds)
    k = parse_labels_per_class(labels_per_class)
    return DEFAULT_CV_FOLDS if k is None else min(k, DEFAULT_CV_FOLDS)


def check_cv(ks: list[Any], cv_folds: int | None, search: str) -> None:
    """--selection cv's conditions on the grid, as one-line errors: K >= 2, F <= K, --search grid."""
    for k in (parse_labels_per_class(v) for v in ks):
        if k is not None and k < 2:
            raise PipelineError(f"--selection cv: needs --labels-per-class K >= 2 (cross-validation holds out part of "
                                f"the K labelled rows of each class), found K = {k}; use --selection val for it")
        if k is not None and cv_folds and cv_folds > k:
            raise PipelineError(f"--cv-folds {cv_folds}: more folds than the {k} labelled rows per class of "
                                f"--labels-per-class {k}; give --cv-folds {k} or fewer")
    if search != "grid":
        raise PipelineError(f"--search {search}: not supported with --selection cv (cross-validation chooses the "
                            "epoch count from the folds' whole curves); use --search grid")


def check_folds_fit(runs: list[Any], cache: Any, names: tuple[str, str] = ("--cv-folds", "--labels-per-class")) -> None:
    """Refuse, in one line naming --cv-folds (`names`: the folds' and K's option names), fold runs whose F
    exceeds a class's labelled rows in `cache` (some fold would then hold out no row of that class; at K = all
    the labelled rows are the split's, known only here)."""
    from heads.training.experiment import split_rows

    checked = set()
    for run in runs:
        opts = run.options
        key = (str(opts.get("labels_per_class", "all")), int(opts["cv_folds"]), int(opts["seed"]))
        if not is_cv(opts) or opts.get("cv_fold") not in (1, "1") or key in checked:
            continue
        checked.add(key)
        counts = np.bincount(cache.label[split_rows(cache, opts)["labelled"]], minlength=cache.num_classes)
        present = np.flatnonzero(counts)
        worst = present[np.argmin(counts[present])]
        if counts[worst] < key[1]:
            fix = (f"give {names[0]} {counts[worst]} or fewer" if counts[worst] >= 2 else
                   "cross-validation needs 2 or more per class")
            raise PipelineError(
                f"{names[0]} {key[1]}: class {cache.class_names[worst]!r} has {counts[worst]} labelled rows at "
                f"{names[1]} {key[0]} in {cache.path} (each fold must hold out a row of every class); {fix}")


# --- the rows of one run --------------------------------------------------------------------------------------
def assign_folds(label: np.ndarray, labelled: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold (0..F-1) of each labelled row, in the order of `labelled`: each class's rows in a seeded order are
    dealt to the folds, the deal continuing from one class to the next (fold sizes differ by at most one)."""
    fold = np.empty(len(labelled), dtype=np.int64)
    dealt = 0
    for c in np.unique(label[labelled]):
        where = np.flatnonzero(label[labelled] == c)
        order = np.random.default_rng([int(seed), 13, int(c)]).permutation(len(where))
        fold[where[order]] = (dealt + np.arange(len(where))) % folds
        dealt += len(where)
    return fold


def cv_rows(cache: Any, options: dict[str, Any]) -> dict[str, Any]:
    """split_rows' rows for a fold run (held-out fold as validation) or a final run (no validation); the carved
    validation rows are dropped. The "cv" entry records the fold, the held-out and the left-out rows."""
    from heads.training.experiment import split_rows

    rows = split_rows(cache, options)
    folds, fold = int(options["cv_folds"]), options["cv_fold"]
    labelled = rows["labelled"]
    assigned = assign_folds(cache.label, labelled, folds, int(options["seed"]))
    held = labelled[assigned == fold - 1] if fold != "final" else np.zeros(0, dtype=np.int64)
    cv = {"folds": folds, "fold": fold, "held_out_image_ids": cache.image_id[held].tolist(),
          "validation_rows_left_out": len(rows["val"]), "labels_used_per_class": options.get("labels_per_class")}
    what = (f"cross-validation fold {fold}/{folds} of the labelled rows" if fold != "final" else
            "none (cross-validation final run: the epoch count was chosen on the folds)")
    out = {**rows, "train": np.setdiff1d(rows["train"], held), "labelled": np.setdiff1d(labelled, held),
           "val": held, "validation": what, "cv": cv}
    out["counts"] = {name: split_counts(cache.label, out[name], cache.num_classes) for name in ("train", "val", "labelled")}
    return out


def prepare_cv(caches: Any, options: dict[str, Any], log: Callable[[str], None] | None) -> Any:
    """heads.training.experiment.prepare_experiment on cv_rows' rows (the method, the standardisation and DCL's input
    transform see the fold's training rows only), its config.json adding the fold and the epoch rule."""
    from heads.training.experiment import prepare_experiment

    rows = cv_rows(caches.train, options)
    prep = prepare_experiment(caches, options, log, rows=rows)
    prep.config.update({"cross_validation": rows["cv"],
                        "selection": FINAL_EPOCH_RULE if options["cv_fold"] == "final" else FOLD_EPOCH_RULE})
    return prep


def run_cv_experiment(caches: Any, options: dict[str, Any], run_dir: Path, progress: bool = False,
                      log: Callable[[str], None] | None = None) -> Any:
    """Train one fold or final run and write `run_dir` (the test split is not scored here)."""
    from heads.training.experiment import RunResult, record_experiment, train_experiment

    prep = prepare_cv(caches, options, log)
    partial = artifacts.begin_run(run_dir)
    artifacts.write_json(partial / "config.json", prep.config)
    result, seconds, first_step = train_experiment(caches, prep, progress)
    metrics, val = record_experiment(caches, prep, partial, result, seconds, first_step)
    artifacts.write_json(partial / "metrics.json", metrics)
    artifacts.finish_run(partial, run_dir)
    return RunResult(run_dir, dict(options), result.best_epoch, prep.train_options.epochs, val, seconds,
                     None, caches.train.untrained, metrics["backbone_weights"], metrics["health"]["state"])


# --- planning, selecting, the final runs --------------------------------------------------------------------
def fold_runs(runs: list[Any], cv_folds: int | None) -> list[Any]:
    """Each planned (setting, seed) run as its F fold runs (heads.search.grid.PlannedRun), in order."""
    out = []
    for run in runs:
        folds = folds_for(run.options.get("labels_per_class", "all"), cv_folds)
        for f in range(1, folds + 1):
            options = {**run.options, "selection": "cv", "cv_folds": folds, "cv_fold": f}
            out.append(replace(run, run_dir=run.run_dir.with_name(f"{run.label}_seed={run.seed}_cv={folds}_fold={f}"),
                               options=options))
    return out


def fold_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(held-out top-1 per epoch, held-out loss per epoch, held-out rows) of a finished fold run."""
    with open(run_dir / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    n = int(artifacts.read_json(run_dir / "config.json")["rows"]["val"])
    return (np.array([float(r["val_acc"]) for r in history]), np.array([float(r["val_loss"]) for r in history]), n)


def seed_curve(dirs: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """One seed's folds pooled: held-out top-1 and loss per epoch, each fold weighted by its held-out rows."""
    curves = [fold_curve(d) for d in dirs]
    n = np.array([c[2] for c in curves], dtype=float)
    return (np.average([c[0] for c in curves], axis=0, weights=n),
            np.average([c[1] for c in curves], axis=0, weights=n))


def score_setting(runs: list[Any]) -> dict[str, Any]:
    """A setting's fold runs -> its curve (mean over seeds of the pooled folds), best epoch and the seeds' scores."""
    by_seed: dict[int, list[Path]] = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run.run_dir)
    per_seed = {seed: seed_curve(dirs) for seed, dirs in by_seed.items()}
    acc = np.mean([c[0] for c in per_seed.values()], axis=0)
    loss = np.mean([c[1] for c in per_seed.values()], axis=0)
    best = max(range(len(acc)), key=lambda e: (acc[e], -loss[e], -e))
    at_best = [float(c[0][best]) for c in per_seed.values()]
    return {"epochs": best + 1, "top1": float(acc[best]), "loss": float(loss[best]), "seeds": sorted(per_seed),
            "top1_std": float(np.std(at_best, ddof=1)) if len(at_best) > 1 else 0.0,
            "curve": [round(float(a), 6) for a in acc]}


def select_cv(runs: list[Any], failed: set[Path]) -> list[dict[str, Any]]:
    """Per aux choice and K, the best setting by cross-validation (selection.json entries without "runs").
    A setting with a failed (diverged) fold run is not eligible; settings whose fold runs all learned
    (heads.training.health) come first."""
    groups: dict[tuple, dict[str, list[Any]]] = {}
    for run in runs:
        cond = tuple(str(run.options.get(c)) for c in CONDITIONS)
        groups.setdefault((run.setting.aux, cond), {}).setdefault(run.label, []).append(run)
    out = []
    for (aux, cond), settings in groups.items():
        best = None
        for order, (label, members) in enumerate(settings.items()):
            if any(r.run_dir in failed for r in members):
                continue
            s = score_setting(members)
            healthy = learned([state_of(artifacts.read_json(r.run_dir / "metrics.json")) for r in members])
            key = (healthy, s["top1"], -s["loss"], -order)
            if best is None or key > best[0]:
                best = (key, label, members, s)
        if best is None:
            continue
        _, label, members, s = best
        out.append({"aux": aux, **dict(zip(CONDITIONS, cond)), "setting": label, "val_top1_mean": s["top1"],
                    "val_top1_std": s["top1_std"], "val_loss_mean": s["loss"], "n": len(s["seeds"]),
                    "seeds": s["seeds"], "candidates": len(settings), "selection": "cv",
                    "cv_folds": int(members[0].options["cv_folds"]), "selected_epochs": s["epochs"],
                    "labels_used_per_class": members[0].options.get("labels_per_class"), "cv_curve": s["curve"],
                    "_members": members})
    return out


def final_runs(entries: list[dict[str, Any]]) -> list[Any]:
    """The selected settings' final runs (heads.search.grid.PlannedRun): all K labelled rows, the selected epochs.
    Each entry keeps its own under "_finals"."""
    finals = []
    for e in entries:
        e["_finals"] = []
        for run in (r for r in e["_members"] if r.options["cv_fold"] == 1):
            options = {**run.options, "cv_fold": "final", "stop_after_epoch": e["selected_epochs"]}
            name = f"{run.label}_seed={run.seed}_cv={run.options['cv_folds']}_final_epochs={e['selected_epochs']}"
            e["_finals"].append(replace(run, run_dir=run.run_dir.with_name(name), options=options))
        finals += e["_finals"]
    return finals


def select_and_train_finals(sweep_dir: Path, auxes: list[str], runs: list[Any], failed: set[Path],
                            execute: Callable[[list[Any]], None], log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Select by cross-validation from the finished fold `runs`, train the final runs not finished yet through
    `execute(runs)`, write selection.json (entries' "runs": the final runs); the selected entries."""
    entries = select_cv(runs, failed)
    finals = final_runs(entries)
    for e in entries:
        log(f"cv: {e['aux']} (--labels-per-class {e['labels_per_class']}): {e['setting']}, {e['selected_epochs']} "
            f"epochs, pooled held-out top-1 {100 * e['val_top1_mean']:.2f}% over {e['cv_folds']} folds")
    execute(finals)
    for e in entries:
        members, mine = e.pop("_members"), e.pop("_finals")
        done = [f for f in mine if not artifacts.read_json(f.run_dir / "metrics.json").get("failed")]
        e["seeds"], e["runs"] = [f.seed for f in done], [f.run_dir.relative_to(sweep_dir).as_posix() for f in done]
        e["health"] = [state_of(artifacts.read_json(f.run_dir / "metrics.json")) for f in done]
        e["fold_runs"] = [m.run_dir.relative_to(sweep_dir).as_posix() for m in members]
        e["n"] = len(done)
    selected = [e for e in entries if e["runs"]]
    artifacts.write_json(sweep_dir / "selection.json", {"rule": CV_SELECTION_RULE, "auxes": auxes,
                                                        "conditions": CONDITIONS, "selection": "cv",
                                                        "selected": selected})
    return selected
