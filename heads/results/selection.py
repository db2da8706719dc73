"""Selection on validation only: per cell (heads.cells.Cell: aux choice and K), the setting with the lowest mean
validation loss over seeds among those whose runs learned, read from runs.csv alone and written to selection.json.

Why the loss and not top-1: every validation image moves the cross-entropy, so two settings never tie on it,
while top-1 on one validation image per class moves in whole images (10 images: steps of 10 points) and ties
often; a tie then went to the first setting of the grid. The run's loss is that of its kept epoch (heads.training.epochs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heads.cells import K_NAME, Cell
from heads.training import artifacts
from heads.results.runs import read_runs_csv
from heads.training.health import learned
from heads.results.stats import mean_std


SETTING_SELECTION_RULE = ("for each method, the setting with the lowest mean validation loss (cross-entropy) over "
                          "seeds at each run's kept epoch (ties: higher mean validation top-1, then grid order), among "
                          "the settings whose every run learned (heads.training.health) when there is one; validation rows are "
                          "carved from the training split per seed; the test split was scored after selection, for "
                          "the selected settings only")
CV_SELECTION_RULE = ("for each aux choice and labels per class, stratified F-fold cross-validation within the K "
                     "labelled rows of each class: each setting's held-out top-1 after every epoch, pooled over the "
                     "folds and averaged over seeds; the setting with the best epoch wins (ties: lower pooled loss, "
                     "then grid order) and retrains on all K labelled rows for that many epochs, one final run per "
                     "seed; the validation rows were not used; the test split was scored after selection, for the "
                     "final runs only")


def select(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """From runs.csv rows: for each aux choice (and each labels-per-class value), the setting with the
    lowest mean validation loss over seeds, among the settings whose every run learned (heads.training.health.learned)
    when there is one; otherwise among all, and the entry says its runs' health.

    Ties go to the higher mean validation top-1, then to the earlier setting in the file. A setting
    with a failed (diverged) seed is not eligible, nor one that successive halving stopped (its runs
    trained a shorter budget; the survivors of a group always include its best at the last rung).
    """
    by_setting: dict[tuple[Cell, str], list[dict[str, str]]] = {}
    for r in rows:
        by_setting.setdefault((Cell.of_row(r), r["setting"]), []).append(r)
    best: dict[Cell, dict[str, Any]] = {}
    candidates: dict[Cell, int] = {}
    for order, ((cell, setting), runs) in enumerate(by_setting.items()):
        candidates[cell] = candidates.get(cell, 0) + 1
        if any(r["status"] != "done" or r.get("stopped_at_epoch") for r in runs):
            continue
        top1 = [float(r["val_top1"]) for r in runs]
        loss = [float(r["val_loss"]) for r in runs]
        mean, std = mean_std(top1)
        health = [r.get("health") or "ok" for r in runs]  # runs.csv of an earlier version: no column, not judged
        key = (learned(health), -float(np.mean(loss)), mean, -order)
        if cell not in best or key > best[cell]["_key"]:
            best[cell] = {"_key": key, **cell.row(), "setting": setting,
                          "val_top1_mean": mean, "val_top1_std": std, "val_loss_mean": float(np.mean(loss)),
                          "n": len(runs), "seeds": [int(r["seed"]) for r in runs],
                          "runs": [r["run_dir"] for r in runs], "health": health}
    out = []
    for key, entry in best.items():
        entry.pop("_key")
        out.append({**entry, "candidates": candidates[key]})
    return out


def select_and_record(sweep_dir: Path, auxes: list[str]) -> list[dict[str, Any]]:
    """`select` from runs.csv alone, written to selection.json."""
    selected = select(read_runs_csv(sweep_dir / "runs.csv"))
    artifacts.write_json(sweep_dir / "selection.json", {"rule": SETTING_SELECTION_RULE, "auxes": auxes,
                                                        "conditions": [K_NAME], "selected": selected})
    return selected
