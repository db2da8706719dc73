"""What a successive-halving rung leaves for its survivors: the training state after the rung's last epoch.

A rung run is its full run's schedule cut after e_k epochs (heads.search). At that point the loop saves
`rung_state.pt` in the run directory: every number the next epoch depends on (the method's weights and
buffers, e.g. PIRL's memory bank, and the generators it holds, e.g. PIRL's for sampled negatives; the
optimiser's momentum; the step counter; the epoch stream's and the labelled stream's generators; torch's
global generator; the epochs recorded and the best one so far). A
survivor at the next rung CONTINUES from it instead of training epochs 1..e_k again: its history, weights and
selection are the same as a run trained from scratch to the longer budget (the same operations in the same
order; tests/heads/test_rungs.py), and halving costs sum_k survivors_k x (e_k - e_(k-1)) epochs.

Between rungs the state waits in `<sweep>/rungs/<run name>.pt` (`set_aside`, called where heads.search clears
a shorter run): a run that finds its file there (`load_for`, checked against its options) resumes from it
and removes it once it is written; one killed meanwhile finds it again. States of stopped runs are deleted
(`discard`): they never train again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import PipelineError

STATE_FILE = "rung_state.pt"  # in a rung run's directory
RUNGS_DIR = "rungs"  # <sweep>/rungs/<run name>.pt between rungs
FORMAT = 2  # 2: the method's own generators too
IGNORED = ("stop_after_epoch",)  # the options a continued run may change


def wants_state(options: dict[str, Any]) -> bool:
    """Whether a run leaves a rung state: a halving rung (a budget cut short), not a cross-validation run."""
    stop = options.get("stop_after_epoch")
    return bool(stop) and stop < options["epochs"] and options.get("selection") != "cv"


def rung_file(run_dir: Path) -> Path:
    """Where a run's state waits between rungs: <sweep>/rungs/<run name>.pt."""
    run_dir = Path(run_dir)
    return run_dir.parent.parent / RUNGS_DIR / f"{run_dir.name}.pt"


def comparable(options: dict[str, Any]) -> dict[str, str]:
    """The options a state must share with the run that continues it (as strings, for the check)."""
    return {k: repr(v) for k, v in sorted(options.items()) if k not in IGNORED}


def save(path: Path, state: dict[str, Any], options: dict[str, Any]) -> None:
    """Write a state (with the options it belongs to) under a temporary name, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "options": comparable(options), **state}, tmp)
    os.replace(tmp, path)


def set_aside(run_dir: Path) -> None:
    """Move a finished rung run's state to rung_file(run_dir) (before the shorter run is removed)."""
    source = Path(run_dir) / STATE_FILE
    if source.is_file():
        target = rung_file(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)


def load_for(run_dir: Path, options: dict[str, Any]) -> dict[str, Any] | None:
    """The state a run continues from, or None (none waiting, or one this run cannot continue: it then
    trains from scratch). A state from other options, or as long as the run, is never used."""
    path = rung_file(run_dir)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # written under a temporary name and renamed, so damaged by something else: say so
        raise PipelineError(f"{path}: unreadable rung state ({type(e).__name__}: {str(e)[:120]}); delete it and rerun "
                            "(that run then trains from scratch)") from None
    want = options.get("stop_after_epoch") or options["epochs"]
    if state.get("format") != FORMAT or state.get("options") != comparable(options) or state["epoch"] >= want:
        return None
    return state


def discard(run_dir: Path) -> None:
    """Delete a run's state wherever it is (a stopped run, or one that continued)."""
    for path in (Path(run_dir) / STATE_FILE, rung_file(run_dir)):
        path.unlink(missing_ok=True)
