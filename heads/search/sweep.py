"""The one sweep engine (sweep-heads and study): a grid of settings x seeds, selection on validation only, the test
split scored once.

    grid       for each aux choice, the cross product of the values of the options that apply to it
    runs       one run per (setting, seed), test split NOT scored -> runs.csv
    selection  per aux choice, the setting with the highest mean validation top-1 over seeds
               (ties: lower mean validation loss; then grid order) -> selection.json
    test       only the selected settings' runs are scored on the test split, after selecting
    summary    test metrics mean +- std over seeds and paired differences against each method's
               same-network baseline (and the linear probe), recomputed from predictions.csv
               -> summary.csv, summary.md, sweep.png

Rerunning the same command resumes: finished runs are skipped, interrupted (.partial) ones redone.

This module is the one sweep engine: `sweep-heads` and a study both call `run_sweep` (record the plan, train
the runs through an executor under the search strategy, select, score the selection once, summarise); every run
trains through the one runner, heads.training.experiment.run_specs. Its
rooms: heads.search.grid (the grid and the planned runs), heads.results.runs (runs.csv), heads.results.selection, heads.results.summary.

--selection cv (heads.search.cv) replaces the runs and the selection: plan.runs are each (setting, seed)'s fold runs
(heads.search.cv.fold_runs), whose specs carry their fold (the runner takes their rows), and select_cv_and_finish
selects on the folds and trains the final runs (all K labelled rows, the selected epochs) that score_selected
then scores on the test split, once.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from pipeline.diff import diff_keys
from pipeline.errors import PipelineError

from heads.training import artifacts
from heads.cells import Cell
from heads.search.grid import PlannedRun, SweepPlan, plan_sweep
from heads.results.runs import RunRow, cv_fields, read_run_row, read_runs_csv, write_failed_run, write_runs_csv
from heads.training.epochs import DEFAULT_PATIENCE
from heads.options import OPTIONS_BY_NAME
from heads.results.selection import select_and_record
from heads.results.summary import write_summary


def sweep_identity(plan: SweepPlan, caches: Any) -> dict[str, Any]:
    """What must match for a rerun under the same --name to resume (not the device, output or verbosity); the
    grid's values as config.json writes them (K as text)."""
    o, how = plan.base.options, plan.how
    return {
        "grid": {aux: {k: [OPTIONS_BY_NAME[k].render(x) for x in v] for k, v in opts.items()}
                 for aux, opts in plan.grid.items()},
        "seeds": plan.seeds,
        "val_fraction": o.val_fraction,
        "val_per_class": o.val_per_class,
        "standardize": plan.base.standardize,
        **({"patience": o.patience} if o.patience != DEFAULT_PATIENCE else {}),
        "train_cache": {"path": str(caches.train.path), "config_hash": caches.train.attrs.get("config_hash")},
        "test_cache": {"path": str(caches.test.path), "config_hash": caches.test.attrs.get("config_hash")},
        **({"selection": {"selection": "cv", "cv_folds": how.cv_folds}} if how.cv else {}),  # a val sweep's identity
    }                                                                                       # is as it always was


def check_resumable(sweep_dir: Path, identity: dict[str, Any], grow: bool = False) -> None:
    """Refuse a sweep directory that holds another sweep. sweep-heads (grow False): every part of the identity
    must match; a study (grow True: a grown spec reuses its finished runs, the study checks the rest of its
    identity itself) refuses only finished runs trained on other caches."""
    saved_file = sweep_dir / "sweep.json"
    if not saved_file.is_file():
        return
    saved = artifacts.read_json(saved_file).get("identity", {})
    if grow:
        if not any((p / "metrics.json").is_file() for p in (sweep_dir / "runs").glob("*")):
            return
        keys = ("train_cache", "test_cache")
        differ = diff_keys({k: saved.get(k) for k in keys}, {k: identity[k] for k in keys}, labels=("before", "now"))
        if differ:
            raise PipelineError(f"{sweep_dir}: the finished runs were trained on other caches ({'; '.join(differ)}); "
                                "they cannot be reused: give another --out")
        return
    differ = diff_keys(saved, identity, labels=("before", "now"))
    if differ:
        what = "; ".join(differ[:4]) + (f"; and {len(differ) - 4} more" if len(differ) > 4 else "")
        raise PipelineError(f"{sweep_dir}: a sweep with different settings is already there ({what}); "
                            "rerun the same command to resume it, or choose another --name")


def record_plan(plan: SweepPlan, caches: Any, log: Callable[[str], None], command: str | None = None,
                grow: bool = False) -> SweepPlan:
    """Check that the sweep directory may be written (or resumed: `grow`, check_resumable) and record sweep.json;
    the planned runs. `command`: what sweep.json names as the command (sweep-heads' own argv by default)."""
    identity, how = sweep_identity(plan, caches), plan.how
    check_resumable(plan.sweep_dir, identity, grow)
    (plan.sweep_dir / "runs").mkdir(parents=True, exist_ok=True)
    untrained = artifacts.weights_note(True, caches.train.attrs.get("backbone_weights")) if caches.train.untrained else ""
    artifacts.write_json(plan.sweep_dir / "sweep.json", {
        "name": plan.name, "command": command or "sweep-heads " + " ".join(sys.argv[1:]), "auxes": plan.auxes,
        "identity": identity, "swept": plan.swept, "keep_weights": how.keep_weights,
        "search": {"search": how.search, "halving_eta": how.halving_eta, "halving_rungs": how.halving_rungs},
        "selection": {"selection": how.selection, "cv_folds": how.cv_folds}, "untrained_note": untrained,
        "settings": {run.label: run.described for run in plan.runs}})
    for note in plan.notes:
        log(f"note: {note}")
    folds = " (cv fold runs; the final runs come after selection)" if how.cv else ""
    log(f"sweep {plan.name}: {len(plan.settings)} settings x {len(plan.seeds)} seeds = {len(plan.runs)} runs"
        f"{folds} "
        f"({', '.join(f'{a}: {sum(s.aux == a for s in plan.settings)}' for a in plan.auxes)}) -> {plan.sweep_dir}")
    return plan


def train_together(runs: list[PlannedRun], caches: Any, progress: bool, log: Callable[[str], None],
                   between_epochs: Callable[[], None] | None = None) -> dict[Path, str]:
    """Train planned runs on one batch stream through the one runner (heads.training.experiment.run_specs): a single
    run, or a bank (heads.training.bank); a run that diverged is recorded as failed. {run directory: message}."""
    from heads.training.experiment import run_specs
    from heads.training.step import Diverged

    started = time.time()
    results = run_specs(caches, [(run.spec, run.run_dir) for run in runs], progress=progress, log=log,
                        between_epochs=between_epochs)
    seconds = (time.time() - started) / len(runs)
    said = {}
    for run, result in zip(runs, results):
        if isinstance(result, Diverged):
            write_failed_run(run.run_dir, run.spec, str(result), seconds)
        said[run.run_dir] = str(result) if isinstance(result, Diverged) else run_message(result, len(runs))
    return said


def run_message(result: Any, heads: int) -> str:
    """'best epoch 7/30, val top-1 81.25% (2.1 s)': what a trained run's line says."""
    bank = f"in a bank of {heads}, {result.train_seconds * heads:.1f} s" if heads > 1 else f"{result.train_seconds:.1f} s"
    if not result.val:  # a cross-validation final run: no validation rows, the epoch count chosen on the folds
        return f"trained {result.best_epoch} epochs, no validation ({bank})"
    return f"best epoch {result.best_epoch}/{result.epochs}, val top-1 {100 * result.val['top1']:.2f}% ({bank})"


OnRun = Callable[[int, int, PlannedRun, str, bool], None]  # (k, of, run, message, trained here) after each run
OnEpoch = Callable[[list[PlannedRun]], None]  # (the runs training together) after each of their epochs


def run_planned(runs: list[PlannedRun], caches: Any, progress: bool, log: Callable[[str], None],
                on_run: OnRun | None = None, on_epoch: OnEpoch | None = None) -> list[RunRow]:
    """Train the planned runs not finished yet, in order; one RunRow per planned run (finished ones read back).
    A bank of linear/none settings that differ only in lr or weight decay (heads.training.bank) trains in one pass when
    its first run comes up. `on_run` hears of each run as it ends (default: one "[k/N] name: message" line),
    `on_epoch` of the runs training together after each of their epochs."""
    from heads.training.bank import banks_of

    said: set[str] = set()

    def once(message: str) -> None:  # the same note for every aux choice of a seed: say it once
        if message not in said:
            said.add(message)
            log(message)

    def report(k: int, run: PlannedRun, message: str, trained: bool) -> None:
        if on_run is not None:
            on_run(k, len(runs), run, message, trained)
        else:
            log(f"[{k:{len(str(len(runs)))}d}/{len(runs)}] {run.label} seed={run.seed}: {message}")

    bank_of = {run.run_dir: bank for bank in banks_of(runs)[0] for run in bank}
    trained: dict[Path, str] = {}
    rows: list[RunRow] = []
    for k, run in enumerate(runs, 1):
        if run.run_dir not in trained and not artifacts.is_complete(run.run_dir):
            group = bank_of.get(run.run_dir, [run])
            hook = (lambda group=group: on_epoch(group)) if on_epoch is not None else None
            trained.update(train_together(group, caches, progress, once, hook))
        rows.append(read_run_row(run.setting, run.label, run.seed, run.run_dir))
        report(k, run, trained.get(run.run_dir, "done earlier, skipped"), run.run_dir in trained)
    return rows


def in_process_executor(caches: Any, progress: bool, log: Callable[[str], None], on_run: OnRun | None = None,
                        on_epoch: OnEpoch | None = None) -> Callable[[list[PlannedRun]], None]:
    """execute(runs): train the planned runs not finished yet, here, one after another (results stay in files);
    `on_epoch` hears of every epoch of every run (run_planned)."""
    def execute(runs: list[PlannedRun]) -> None:
        run_planned(runs, caches, progress, log, on_run, on_epoch)

    return execute


def search_runs(plan: SweepPlan, execute: Callable[[list[PlannedRun]], None], log: Callable[[str], None]) -> list[RunRow]:
    """Train the plan by --search (grid: every run in full; halving: heads.search.halving, one execute per rung)
    through `execute`; one RunRow per planned run, read back from its files (stopped runs marked)."""
    from heads.search.halving import grid_search, halving_search

    if plan.how.search == "halving":
        result = halving_search(plan.runs, execute, plan.how.halving_eta, plan.how.halving_rungs, log)
    else:
        result = grid_search(plan.runs, execute)
    return [replace(read_run_row(r.setting, r.label, r.seed, r.run_dir), search=result.search,
                    stopped_at_epoch=result.stopped_at.get(r.run_dir), **cv_fields(r.spec)) for r in result.runs]


def select_cv_and_finish(sweep_dir: Path, auxes: list[str], runs: list[PlannedRun], rows: list[RunRow],
                         swept: list[str], execute: Callable[[list[PlannedRun]], None],
                         log: Callable[[str], None]) -> tuple[list[dict[str, Any]], list[RunRow]]:
    """--selection cv, after the fold `runs` (heads.search.cv.fold_runs) have trained and `rows` were read back: select on
    the folds, train the final runs through `execute`, write selection.json and runs.csv (fold and final rows);
    (selected entries, rows). select_and_record's counterpart; score_selected and write_summary follow as usual."""
    from heads.search.cv import select_and_train_finals

    failed = {r.run_dir for r in rows if r.status != "done"}
    selected = select_and_train_finals(sweep_dir, auxes, runs, failed, execute, log)
    first_fold = {(run.label, run.seed): run for run in runs if run.spec.fold is not None and run.spec.fold.fold == 1}
    rows = [r for r in rows if r.cv_fold != "final"]
    for e in selected:
        for seed, rel in zip(e["seeds"], e["runs"]):
            fold = first_fold[e["setting"], seed]
            rows.append(read_run_row(fold.setting, fold.label, fold.seed, sweep_dir / rel))
    write_runs_csv(sweep_dir / "runs.csv", rows, swept)
    return selected, rows


def score_selected(sweep_dir: Path, selected: list[dict[str, Any]], caches: Any, progress: bool = False,
                   data_root: str | None = None) -> None:
    """The test split, once, for the selected runs only (retrained first if their weights were pruned)."""
    from heads.spec import RunSpec
    from heads.training.experiment import run_experiment, score_saved_run

    for entry in selected:
        for rel in entry["runs"]:
            run = sweep_dir / rel
            if artifacts.read_json(run / "metrics.json").get("test"):
                continue
            if not (run / "model.pt").is_file():  # weights pruned by an earlier pass: retrain (deterministic)
                config = artifacts.read_json(run / "config.json")
                shutil.rmtree(run)
                recorded = RunSpec.from_record(config["options"])  # an earlier version recorded "auto" there
                run_experiment(caches, recorded.with_options(precision=config["resolved"]["precision"]), run,
                               score_test=False, progress=progress)
            score_saved_run(caches, run, data_root)


def prune_weights(sweep_dir: Path, selected: list[dict[str, Any]], rows: list[RunRow]) -> None:
    """--keep-weights selected: delete model.pt of every run that was not selected."""
    keep = {sweep_dir / rel for entry in selected for rel in entry["runs"]}
    for r in rows:
        if r.run_dir not in keep and (r.run_dir / "model.pt").is_file():
            (r.run_dir / "model.pt").unlink()


def report_sweep(plan: SweepPlan, selected: list[dict[str, Any]]) -> str:
    """summary.csv, summary.md and the figures, from the sweep's files; the summary's markdown."""
    from heads.results.plots import plot_labels, plot_sweep

    summary, markdown = write_summary(plan.sweep_dir)
    runs = [r for r in read_runs_csv(plan.sweep_dir / "runs.csv") if r.get("cv_fold") != "final"]
    plot_sweep(plan.sweep_dir / "sweep.png", runs, selected, plan.grid, plan.swept, summary, plan.sweep_dir)
    if len({Cell.of_row(e).k for e in selected}) > 1:
        plot_labels(plan.sweep_dir / "labels.png", summary, plan.auxes, plan.sweep_dir)
    return markdown


def run_sweep(plan: SweepPlan, caches: Any, execute: Callable[[list[PlannedRun]], None],
              log: Callable[[str], None], command: str | None = None, grow: bool = False, progress: bool = False,
              data_root: str | None = None, scoring: Callable[[int], Callable[[], None]] | None = None
              ) -> tuple[list[dict[str, Any]], list[RunRow], str]:
    """The one sweep: record the plan (record_plan: `command`, `grow`), train its runs through `execute` under
    --search (grid, or halving: one execute per rung), write runs.csv, select on validation only (or by
    cross-validation, training the final runs), score the selected runs on the test split once, prune unselected
    weights (keep_weights "selected"), summarise. `scoring(todo)` is told how many runs are to be scored and gives
    what to call when they are. (selected entries, rows, summary.md)."""
    record_plan(plan, caches, log, command, grow)
    rows = search_runs(plan, execute, log)
    write_runs_csv(plan.sweep_dir / "runs.csv", rows, plan.swept)
    if plan.how.cv:  # select on the folds, then train the final runs (heads.search.cv)
        selected, rows = select_cv_and_finish(plan.sweep_dir, plan.auxes, plan.runs, rows, plan.swept, execute, log)
    else:
        selected = select_and_record(plan.sweep_dir, plan.auxes)
    todo = sum(1 for e in selected for rel in e["runs"]
               if not artifacts.read_json(plan.sweep_dir / rel / "metrics.json").get("test"))
    done = scoring(todo) if scoring is not None else None
    score_selected(plan.sweep_dir, selected, caches, progress, data_root)
    if done is not None:
        done()
    if plan.how.keep_weights == "selected":
        prune_weights(plan.sweep_dir, selected, rows)
    return selected, rows, report_sweep(plan, selected)


def run_sweep_command(options: dict[str, Any], progress: bool, echo: Callable[..., None],
                      launch: Callable[..., Callable[[list[PlannedRun]], None]] | None = None) -> Path:
    """sweep-heads: parse the command's options once (plan_sweep: the grid, the runs' specs, the sweep's settings),
    read the caches, then run_sweep. `launch(plan, caches, progress, log)` gives the runs' executor
    (heads.search.workers.executor_for, passed in by the command); without it the runs train in this process."""
    from heads.training.experiment import Caches, device_of

    started = time.time()
    plan = plan_sweep(options)
    artifacts.check_writable(plan.sweep_dir, "--out")
    log = lambda m: echo(m, err=True)  # noqa: E731
    caches = Caches.load(options["train"], options["test"], plan.auxes, device_of(plan.how.device), log=log,
                         maps_in_memory=plan.how.maps_in_memory)
    if plan.how.cv:
        from heads.search.cv import check_folds_fit

        check_folds_fit(plan.runs, caches.train)
    execute = launch(plan, caches, progress, log) if launch else in_process_executor(caches, progress, log)
    _selected, rows, markdown = run_sweep(plan, caches, execute, log, progress=progress, data_root=options["data_root"])
    echo(markdown)
    echo(f"sweep directory: {plan.sweep_dir} ({len(rows)} runs; {time.time() - started:.1f} s wall, "
         f"{sum(r.seconds for r in rows):.1f} s of training in runs.csv)")
    return plan.sweep_dir
