"""A sweep's runs as rows: `RunRow` read back from a run's files, a failed (diverged) run recorded as a result,
and runs.csv written and read."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.files import created_atomically

from heads.training import artifacts, rungs
from heads.training.health import run_health, state_of
from heads.options import OPTIONS_BY_NAME
from heads.spec import K_NAME, RunSpec, k_text


@dataclass
class RunRow:
    aux: str
    setting: str
    options: dict[str, Any]
    seed: int
    run_dir: Path
    best_epoch: int | None
    val_top1: float | None
    val_loss: float | None
    seconds: float
    status: str  # "done" or "failed: <why>"
    stopped_at_epoch: int | None = None  # successive halving stopped this run after that epoch (never selected)
    search: str = "grid"
    cv_folds: int | None = None  # --selection cv: F, and this run's fold (1..F) or "final"
    cv_fold: str = ""
    health: str = ""  # heads.training.health: ok | at-chance | diverged | dead-units


def cv_fields(spec: RunSpec) -> dict[str, Any]:
    """RunRow's cv_folds and cv_fold from a run's spec (empty for a --selection val run)."""
    if spec.fold is None:
        return {}
    return {"cv_folds": spec.fold.folds, "cv_fold": spec.fold.fold_text}


def read_run_row(setting: Any, label: str, seed: int, run_dir: Path) -> RunRow:
    """A run's row from its files; `setting`: its heads.search.grid.Setting (aux and the options of its point)."""
    metrics = artifacts.read_json(run_dir / "metrics.json")
    val = metrics.get("val") or {}
    status = "done" if not metrics.get("failed") else f"failed: {metrics['failed']}"
    config = artifacts.read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    return RunRow(setting.aux, label, setting.options, seed, run_dir, metrics.get("best_epoch"), val.get("top1"),
                  val.get("loss"), float((metrics.get("timing") or {}).get("train_seconds") or 0.0), status,
                  **cv_fields_of(config.get("options") or {}), health=state_of(metrics))


def cv_fields_of(record: dict[str, Any]) -> dict[str, Any]:
    """cv_fields from a run directory's config.json "options" (a failed run's too)."""
    return cv_fields(RunSpec.from_record(record)) if record.get("selection") == "cv" else {}


def write_failed_run(run_dir: Path, spec: RunSpec, message: str, seconds: float) -> None:
    """A run that diverged is a result of its setting: kept (so a resume skips it), never selected."""
    partial = artifacts.begin_run(run_dir)
    artifacts.write_json(partial / "config.json", {"command": "sweep-heads", "options": spec.record()})
    artifacts.write_json(partial / "metrics.json", {"val": None, "test": None, "failed": message,
                                                    "health": run_health([], 0, 0, failed=message),
                                                    "timing": {"train_seconds": seconds}})
    artifacts.finish_run(partial, run_dir)
    rungs.discard(run_dir)  # a failed run never continues


def write_runs_csv(path: Path, rows: list[RunRow], swept: list[str]) -> None:
    """One row per run; no test metrics. Options that do not apply to a run's aux choice are left empty;
    K (labels_per_class) is always there. With --selection cv four more columns: selection, cv_folds,
    cv_fold (1..F, or "final": no validation, val_top1 empty) and labels_used_per_class (K)."""
    columns = ([] if K_NAME in swept else [K_NAME]) + swept
    cv = any(r.cv_fold for r in rows)
    with created_atomically(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["aux", "setting", *columns, "seed", "best_epoch", "val_top1", "val_loss", "seconds", "status",
                    "health", "search", "stopped_at_epoch", "run_dir"]
                   + (["selection", "cv_folds", "cv_fold", "labels_used_per_class"] if cv else []))
        for r in rows:
            w.writerow([r.aux, r.setting, *(OPTIONS_BY_NAME[k].render(r.options[k]) if k in r.options else ""
                                            for k in columns), r.seed,
                        "" if r.best_epoch is None else r.best_epoch,
                        "" if r.val_top1 is None else f"{r.val_top1:.6f}",
                        "" if r.val_loss is None else f"{r.val_loss:.6f}", f"{r.seconds:.3f}", r.status, r.health, r.search,
                        "" if r.stopped_at_epoch is None else r.stopped_at_epoch,
                        r.run_dir.relative_to(path.parent).as_posix()]
                       + (["cv" if r.cv_fold else "val", r.cv_folds or "", r.cv_fold,
                           k_text(r.options.get("labels_per_class"))] if cv else []))


def read_runs_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
