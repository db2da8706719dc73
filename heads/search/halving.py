"""Search strategies of `sweep-heads`: which planned runs train, for how long, between planning and selecting.

    grid     every planned run trains its full budget (one `execute` call)
    halving  successive halving, per aux choice and per condition (labels per class): every setting trains
             the first e_1 epochs of its full-budget schedule, settings are ranked by mean validation loss
             over seeds (at each run's kept epoch, heads.training.epochs; the rule heads.results.selection uses) (seeds stay paired: a setting is kept or stopped with all its seeds), the best
             floor(n / eta) (at least one) go on to e_2 epochs, ..., the survivors of the last rung train the
             full budget E. Rung budgets: e_k = round(E / eta^(rungs - k)), at least 1 epoch.

A rung run is the full run's schedule (warm-up and cosine over E epochs) cut after e_k epochs (options'
`stop_after_epoch`), so its first e_k epochs are exactly the full run's, and a survivor's last rung IS the
grid run (same options, same directory, same files). A survivor CONTINUES from the state its rung left
(heads.training.rungs: weights, momentum, generators, history, best epoch so far), so the next rung trains only epochs
e_k+1..e_(k+1), with the same numbers as training from scratch; without that state (deleted, or written by
another version) it trains from scratch, which costs the shorter rungs again and never changes the answer.
Ranking reads only the runs' validation records (history.csv up to the rung's epoch), so the parent can
decide a rung whoever trained its runs (`execute(runs)`: in process, or the workers of a launcher).
Selection then takes the survivors only (stopped runs are listed in runs.csv with `stopped_at_epoch`
and are never eligible); the test split is read after selection, for the selected runs only.
"""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from heads.training import artifacts, rungs as rung_states
from heads.training.epochs import kept_epoch
from heads.spec import Cell

Execute = Callable[[list], None]  # trains a list of PlannedRun; results are read back from the runs' files
SEARCHES = ("grid", "halving")
DEFAULT_ETA = 3
DEFAULT_RUNGS = 3


def log_grid(lo: float, hi: float, n: int) -> list[float]:
    """n values log-spaced from lo to hi inclusive, rounded to 3 significant digits (a fine weight-decay grid
    as CLIP_benchmark's linear probe sweeps; e.g. log_grid(1e-6, 1e-2, 10))."""
    if n < 1 or lo <= 0 or hi < lo:
        raise ValueError(f"log_grid: expected 0 < lo <= hi and n >= 1, found lo={lo}, hi={hi}, n={n}")
    if n == 1:
        return [float(f"{lo:.3g}")]
    return [float(f"{v:.3g}") for v in np.logspace(math.log10(lo), math.log10(hi), n)]


def rung_epochs(epochs: int, eta: int, rungs: int) -> list[int]:
    """The epochs each rung trains to, increasing and ending at `epochs` (rungs that round together merge)."""
    if eta < 2 or rungs < 1:
        raise ValueError(f"halving: expected eta >= 2 and rungs >= 1, found eta={eta}, rungs={rungs}")
    out: list[int] = []
    for k in range(rungs - 1, -1, -1):
        e = max(1, int(round(epochs / eta ** k)))
        if not out or e > out[-1]:
            out.append(e)
    return out


def kept(n: int, eta: int) -> int:
    """How many of n settings go on to the next rung."""
    return max(1, n // eta)


def setting_cell(setting: Any) -> Cell:
    """The cell a grid setting competes in (heads.search.grid.Setting: its aux and its K)."""
    return Cell(setting.aux, setting.options.get("labels_per_class"))


# --- planned runs at a rung -------------------------------------------------------------------------------
def at_rung(run: Any, epochs: int) -> Any:
    """The planned run cut after `epochs` epochs (the run itself at its full budget)."""
    if epochs >= run.spec.options.epochs:
        return run
    return replace(run, spec=replace(run.spec, stop_after=epochs))


def trained_epochs(run_dir: Path) -> int | None:
    """How many epochs a finished run trained (None: not finished; a failed run counts as fully trained:
    the same schedule would diverge at the same step again)."""
    if not artifacts.is_complete(run_dir):
        return None
    metrics = artifacts.read_json(run_dir / "metrics.json")
    if metrics.get("failed") or (metrics.get("convergence") or {}).get("stopped_early_after"):
        return 1 << 30  # the epoch rule stopped it: a longer budget trains the same epochs and stops there again
    with open(run_dir / "history.csv", newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def clear_shorter(runs: Sequence[Any]) -> None:
    """Remove finished runs that trained fewer epochs than planned (an earlier rung's): they continue from the
    state their rung left (heads.training.rungs.set_aside keeps it), or train again when it is not there."""
    for run in runs:
        done = trained_epochs(run.run_dir)
        want = run.spec.stop_after or run.spec.options.epochs
        if done is not None and done < want:
            rung_states.set_aside(run.run_dir)
            shutil.rmtree(run.run_dir)


def validation_record(run_dir: Path, epochs: int) -> tuple[float, float]:
    """(val top-1, val loss) of the epoch the loop's rule keeps among the first `epochs` (heads.training.epochs, from the
    run's val_losses.npy; a run written without it: the best top-1, ties to the lower loss); failed: (-inf, inf)."""
    if artifacts.read_json(run_dir / "metrics.json").get("failed"):
        return -math.inf, math.inf
    with open(run_dir / "history.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(float(r["epoch"])) <= epochs]
    saved = run_dir / "val_losses.npy"
    if saved.exists():
        best = rows[kept_epoch(list(np.load(saved)[:len(rows)])) - 1]
    else:
        best = max(rows, key=lambda r: (float(r["val_acc"]), -float(r["val_loss"])))
    return float(best["val_acc"]), float(best["val_loss"])


# --- the strategies ---------------------------------------------------------------------------------------
@dataclass
class SearchResult:
    """The runs as finally trained (survivors at their full budget, stopped ones at their last rung) and,
    for each stopped run's directory, the epoch it was stopped at."""

    runs: list[Any]
    stopped_at: dict[Path, int]
    search: str


def grid_search(runs: list[Any], execute: Execute) -> SearchResult:
    """Every planned run, full budget."""
    clear_shorter(runs)
    execute(runs)
    return SearchResult(list(runs), {}, "grid")


def group_key(run: Any) -> Cell:
    """Settings compete within a cell: an aux choice at one K."""
    return run.spec.cell


def rank_settings(runs: list[Any], epochs: dict[Path, int]) -> list[Any]:
    """Settings (in grid order) sorted best first by mean validation loss over seeds (heads.results.selection's rule),
    each run's record taken over its first epochs[run_dir] epochs (ties: higher mean validation top-1, then grid
    order)."""
    by_setting: dict[Any, list[tuple[float, float]]] = {}
    for run in runs:
        by_setting.setdefault(run.setting, []).append(validation_record(run.run_dir, epochs[run.run_dir]))
    order = list(by_setting)
    key = {s: (-float(np.mean([l for _, l in v])), float(np.mean([t for t, _ in v])), -order.index(s))
           for s, v in by_setting.items()}
    return sorted(order, key=lambda s: key[s], reverse=True)


def epochs_at(run: Any, rung: int, eta: int, rungs: int) -> int:
    """The epochs `run` trains to at rung 0..rungs-1: round(E / eta^(rungs - 1 - rung)), at least 1."""
    return max(1, int(round(run.spec.options.epochs / eta ** (rungs - 1 - rung))))


def halving_search(runs: list[Any], execute: Execute, eta: int = DEFAULT_ETA, rungs: int = DEFAULT_RUNGS,
                   log: Callable[[str], None] = lambda m: None) -> SearchResult:
    """Successive halving over the planned runs: one `execute` call per rung, survivors decided from files."""
    rung_epochs(1, eta, rungs)  # checks eta and rungs
    active: dict[tuple, list[Any]] = {}
    for run in runs:
        active.setdefault(group_key(run), []).append(run)
    stopped: dict[Path, int] = {}
    for rung in range(rungs):
        last = rung == rungs - 1
        # a group down to one setting goes straight to the full budget (no ranking left to do), and a rung
        # whose budget rounds to the next one's is merged into it
        ranked_groups = [k for k, g in active.items() if not last and len({r.setting for r in g}) > 1
                         and epochs_at(g[0], rung, eta, rungs) < epochs_at(g[0], rung + 1, eta, rungs)]
        todo = [at_rung(r, epochs_at(r, rung, eta, rungs)) for k, g in active.items() for r in g
                if last or k in ranked_groups]
        clear_shorter(todo)
        execute(todo)
        if last:
            break
        for key in ranked_groups:
            group = active[key]
            ranked = rank_settings(group, {r.run_dir: epochs_at(r, rung, eta, rungs) for r in group})
            keep = set(ranked[:kept(len(ranked), eta)])
            stopped.update({r.run_dir: epochs_at(r, rung, eta, rungs) for r in group if r.setting not in keep})
            for r in group:
                if r.setting not in keep:
                    rung_states.discard(r.run_dir)  # a stopped run never trains again
            active[key] = [r for r in group if r.setting in keep]
        budgets = ", ".join(sorted({str(epochs_at(r, rung, eta, rungs)) for r in todo}))
        log(f"halving rung {rung + 1}/{rungs}: {len(todo)} runs trained ({budgets} epochs); "
            f"{sum(len({r.setting for r in g}) for g in active.values())} settings go on")
    for run in runs:  # every run has trained all it will: no state is waiting any more (one a kill left, too)
        rung_states.discard(run.run_dir)
    return SearchResult([at_rung(r, stopped[r.run_dir]) if r.run_dir in stopped else r for r in runs],
                        stopped, "halving")


# --- the cost model -----------------------------------------------------------------------------------------
@dataclass
class HalvingBudget:
    """Epochs a planned grid trains under a search strategy (failed runs aside: the counts are exact)."""

    rungs: list[tuple[int, int]]  # (epochs, settings trained to them), summed over groups
    total_epochs: int  # every epoch every run trains (a survivor continues from its rung: heads.training.rungs)
    grid_epochs: int  # the same grid trained in full
    max_epochs_per_run: int  # a run that survives every rung (its full budget, trained once)
    expected_epochs_per_run: float  # total_epochs / runs
    may_stop: int  # runs halving stops before the full budget
    runs: int


def halving_budget(settings: Sequence[Any] | int, seeds: int, epochs: int, eta: int = DEFAULT_ETA,
                   rungs: int = DEFAULT_RUNGS) -> HalvingBudget:
    """Epochs trained by successive halving over `settings` (Setting objects, grouped per aux choice and
    labels per class as the sweep groups them, or a count: one group) x `seeds` at a full budget `epochs`."""
    sizes = _group_sizes(settings)
    budgets = rung_epochs(epochs, eta, rungs)
    per_rung: dict[int, int] = {}
    total, stop = 0, 0
    for n in sizes:
        alive, trained = n, 0
        for e in budgets:
            if e < epochs and alive < 2:
                continue
            per_rung[e] = per_rung.get(e, 0) + alive
            total += alive * (e - trained) * seeds  # survivors continue from the epochs they trained
            trained = e
            if e < epochs:
                stop += (alive - kept(alive, eta)) * seeds
                alive = kept(alive, eta)
    count = sum(sizes) * seeds
    return HalvingBudget(sorted(per_rung.items()), total, count * epochs, epochs,
                         total / count if count else 0.0, stop, count)


def grid_budget(settings: Sequence[Any] | int, seeds: int, epochs: int) -> HalvingBudget:
    """The grid strategy in the same terms: every run trains `epochs`."""
    count = sum(_group_sizes(settings)) * seeds
    return HalvingBudget([(epochs, sum(_group_sizes(settings)))], count * epochs, count * epochs, epochs,
                         float(epochs), 0, count)


def _group_sizes(settings: Sequence[Any] | int) -> list[int]:
    if isinstance(settings, int):
        return [settings]
    groups: dict[tuple, int] = {}
    for s in settings:
        key = setting_cell(s)
        groups[key] = groups.get(key, 0) + 1
    return list(groups.values())


def stoppable(settings: Sequence[Any]) -> list[bool]:
    """For each setting (grid order): may successive halving stop it? Only a setting whose group (aux choice,
    labels per class) holds another setting; a group's last survivor always trains the full budget."""
    key = [setting_cell(s) for s in settings]
    return [key.count(k) > 1 for k in key]
