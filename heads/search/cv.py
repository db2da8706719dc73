"""`sweep-heads --selection cv`: select by stratified cross-validation within the K labelled rows of each class.

With `--selection val` a point at K uses K training labels plus the validation rows' labels per class.
With `cv` only the K labelled rows are ever labelled:

    rows     the training split is split as with `val` (`heads.training.rows.split_rows`: the same carved
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
A fold or final run's spec carries its fold (heads.spec.Fold): the one runner takes its rows from it
(heads.training.rows.cv_rows), so workers and the study train them like any run.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.errors import PipelineError

from heads.training import artifacts
from heads.spec import K_NAME, Cell, Fold, K, k_text
from heads.results.selection import CV_SELECTION_RULE
from heads.training.rows import split_rows
from heads.training.health import learned, state_of
from heads.options import DEFAULT_CV_FOLDS



def folds_for(k: K, cv_folds: int | None) -> int:
    """F for one K: --cv-folds, or min(K, 5) (5 for 'all')."""
    if cv_folds:
        return int(cv_folds)
    return DEFAULT_CV_FOLDS if k is None else min(k, DEFAULT_CV_FOLDS)


@dataclass(frozen=True)
class CvNames:
    """How --selection cv's errors name its settings: sweep-heads' flags, or a study spec's keys."""

    cv: str = "--selection cv"
    val: str = "--selection val"
    k: str = "--labels-per-class"
    folds: str = "--cv-folds"
    search: str = "--search"


SPEC_CV_NAMES = CvNames('selection = "cv"', 'selection = "val"', "labels_per_class", "cv_folds", "search")


def check_cv(ks: list[K], cv_folds: int | None, search: str, names: CvNames = CvNames()) -> None:
    """--selection cv's conditions on the grid, as one-line errors: K >= 2, F <= K, --search grid."""
    for k in ks:
        if k is not None and k < 2:
            raise PipelineError(f"{names.cv}: needs {names.k} K >= 2 (cross-validation holds out part of the K "
                                f"labelled rows of each class), found K = {k}; use {names.val} for it")
        if k is not None and cv_folds and cv_folds > k:
            raise PipelineError(f"{names.folds} {cv_folds}: more folds than the {k} labelled rows per class of "
                                f"{names.k} {k}; give {names.folds} {k} or fewer")
    if search != "grid":
        raise PipelineError(f"{names.search} {search}: not supported with {names.cv} (cross-validation chooses the "
                            f"epoch count from the folds' whole curves); use {names.search} grid")


def check_folds_fit(runs: list[Any], cache: Any, names: tuple[str, str] = ("--cv-folds", "--labels-per-class")) -> None:
    """Refuse, in one line naming --cv-folds (`names`: the folds' and K's option names), fold runs whose F
    exceeds a class's labelled rows in `cache` (some fold would then hold out no row of that class; at K = all
    the labelled rows are the split's, known only here)."""
    checked = set()
    for run in runs:
        spec = run.spec
        if spec.fold is None or spec.fold.fold != 1:
            continue
        key = (spec.k, spec.fold.folds, spec.seed)
        if key in checked:
            continue
        checked.add(key)
        counts = np.bincount(cache.label[split_rows(cache, spec)["labelled"]], minlength=cache.num_classes)
        present = np.flatnonzero(counts)
        worst = present[np.argmin(counts[present])]
        if counts[worst] < key[1]:
            fix = (f"give {names[0]} {counts[worst]} or fewer" if counts[worst] >= 2 else
                   "cross-validation needs 2 or more per class")
            raise PipelineError(
                f"{names[0]} {key[1]}: class {cache.class_names[worst]!r} has {counts[worst]} labelled rows at "
                f"{names[1]} {k_text(key[0])} in {cache.path} (each fold must hold out a row of every class); {fix}")


# --- planning, selecting, the final runs --------------------------------------------------------------------
def fold_name(label: str, seed: int, folds: int, fold: int) -> str:
    """A fold run's directory name (beside its setting's `<label>_seed=S`)."""
    return f"{label}_seed={seed}_cv={folds}_fold={fold}"


def final_name(label: str, seed: int, folds: int, epochs: int | str) -> str:
    """A final run's directory name, at the selected `epochs` ("*": a glob over any)."""
    return f"{label}_seed={seed}_cv={folds}_final_epochs={epochs}"


def fold_runs(runs: list[Any], cv_folds: int | None) -> list[Any]:
    """Each planned (setting, seed) run as its F fold runs (heads.search.grid.PlannedRun), in order."""
    out = []
    for run in runs:
        folds = folds_for(run.spec.k, cv_folds)
        for f in range(1, folds + 1):
            out.append(replace(run, run_dir=run.run_dir.with_name(fold_name(run.label, run.seed, folds, f)),
                               spec=replace(run.spec, fold=Fold(folds, f))))
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
    groups: dict[Cell, dict[str, list[Any]]] = {}
    for run in runs:
        groups.setdefault(run.spec.cell, {}).setdefault(run.label, []).append(run)
    out = []
    for cell, settings in groups.items():
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
        out.append({**cell.row(), "setting": label, "val_top1_mean": s["top1"],
                    "val_top1_std": s["top1_std"], "val_loss_mean": s["loss"], "n": len(s["seeds"]),
                    "seeds": s["seeds"], "candidates": len(settings), "selection": "cv",
                    "cv_folds": members[0].spec.fold.folds, "selected_epochs": s["epochs"],
                    "labels_used_per_class": cell.k_text, "cv_curve": s["curve"],
                    "_members": members})
    return out


def final_runs(entries: list[dict[str, Any]]) -> list[Any]:
    """The selected settings' final runs (heads.search.grid.PlannedRun): all K labelled rows, the selected epochs.
    Each entry keeps its own under "_finals"."""
    finals = []
    for e in entries:
        e["_finals"] = []
        for run in (r for r in e["_members"] if r.spec.fold.fold == 1):
            spec = replace(run.spec, fold=Fold(run.spec.fold.folds, None), stop_after=e["selected_epochs"])
            name = final_name(run.label, run.seed, spec.fold.folds, e["selected_epochs"])
            e["_finals"].append(replace(run, run_dir=run.run_dir.with_name(name), spec=spec))
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
                                                        "conditions": [K_NAME], "selection": "cv",
                                                        "selected": selected})
    return selected
