"""The stages of a study, each resumable: dataset -> extract train and test -> sweep -> report.

Stage 1 runs through its command in a subprocess (`python -m extract`, i.e. extract-features): TensorFlow
never enters this process. Stage 2 runs here, through heads' own functions (Caches.load, run_experiment,
select, score_saved_run, write_summary). Each stage finds its finished work on disk: a complete cache
whose config matches, a run directory renamed into place, a scored run's metrics.json. So a study
killed at any moment (SIGKILL included) continues where it stopped when the same command is rerun.

Directory `<out>/`: study.json (spec, identity, time per stage), calibration.json, sweep/ (a sweep-heads
directory: sweep.json, runs/, runs.csv, selection.json, summary.*), figures/, report.md, report.html.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from pipeline.diff import diff_keys
from pipeline.errors import PipelineError

from .plan import Plan, disk_needs, existing_parent, expected_config, fmt_bytes, inspect_cache, stage_seconds
from .progress import Progress

STATE = "study.json"
SWEEP = "sweep"

Log = Callable[[str], None]


# --- the study's identity: what finished work depends on ------------------------------------------------
def identity(plan: Plan) -> dict[str, Any]:
    """Settings every finished run depends on: a change to any of them is refused once runs exist."""
    spec = plan.spec
    return {"epochs": spec.epochs, "batch_size": spec.batch_size, "heads_precision": plan.heads_precision,
            "device": plan.device.split(":")[0], "val_per_class": spec.val_per_class,
            "val_fraction": None if spec.val_per_class else spec.val_fraction,
            "caches": {s: {**expected_config(spec, s, plan.precision), "path": str(p)}
                       for s, p in (("train", spec.train_cache), ("test", spec.test_cache))}}


def finished_runs(out: Path) -> int:
    runs = out / SWEEP / "runs"
    return sum(1 for p in runs.iterdir() if (p / "metrics.json").is_file()) if runs.is_dir() else 0


def check_identity(plan: Plan) -> None:
    """Refuse a change that invalidates finished runs (other epochs, caches, validation rule), naming it."""
    from heads import artifacts

    state = plan.spec.out / STATE
    if not state.is_file():
        return
    saved = artifacts.read_json(state).get("identity", {})
    differ = diff_keys(saved, identity(plan), labels=("before", "now"))
    done = finished_runs(plan.spec.out)
    if differ and done:
        raise PipelineError(f"{plan.spec.out}: {done} finished runs of this study were made with other settings, "
                            f"which this change invalidates: {'; '.join(differ[:5])}"
                            f"{'; ...' if len(differ) > 5 else ''}. Restore them, or give another --out")


def write_state(plan: Plan, stage: str | None = None, seconds: float = 0.0) -> None:
    """study.json: the spec, the identity and the seconds spent in each stage (summed over resumes)."""
    from heads import artifacts

    path = plan.spec.out / STATE
    state = artifacts.read_json(path) if path.is_file() else {}
    timing = state.get("stage_seconds", {})
    if stage:
        timing[stage] = timing.get(stage, 0.0) + seconds
    state.update({"spec": str(plan.spec.path), "spec_text": plan.spec.path.read_text(), "identity": identity(plan),
                  "stage_seconds": timing, "command": "study " + " ".join(sys.argv[1:])})
    path.parent.mkdir(parents=True, exist_ok=True)
    artifacts.write_json(path, state)


# --- stage 0: dataset ---------------------------------------------------------------------------------
def stage_dataset(plan: Plan, log: Log) -> None:
    from .plan import _dataset_present, read_splits

    spec = plan.spec
    if spec.download and not _dataset_present(spec):
        from pipeline.datasets import fetch_dataset

        log(f"dataset: downloading {spec.dataset} into {spec.data_root}")
        fetch_dataset(spec.dataset, spec.data_root, progress=sys.stderr.isatty())
        plan.splits, plan.classes, _notes = read_splits(spec)  # the real sizes, now that it is there
    log(f"dataset: {spec.data_root}: {plan.classes} classes, {plan.splits['train'].images} train / "
        f"{plan.splits['test'].images} test images")


# --- stage 1: extraction (a subprocess) ------------------------------------------------------------------
def extract_argv(plan: Plan, split: str) -> list[str]:
    """extract-features options for one split, exactly as the spec asks (precision resolved)."""
    spec = plan.spec
    argv = [] if spec.dataset == "cub" and not spec.dataset_options else ["--dataset", spec.dataset]
    for key, value in spec.dataset_options.items():  # the reader's options, as extract-features names them
        argv += [f"--{spec.dataset}-{key}", str(value)]
    argv += ["--data-root", str(spec.data_root), "--split", split, "--out", str(spec.extraction.features / f"{split}.h5"),
            "--backbone", spec.backbone, "--image-size", str(spec.image_size), "--views", ",".join(spec.kinds),
            "--num-views", str(spec.num_views), "--jigsaw-grid", str(spec.jigsaw_grid), "--rcm-grid", str(spec.rcm_grid),
            "--rcm-k", str(spec.rcm_k), "--batch-size", str(spec.extract_batch_size), "--precision", plan.precision,
            "--seed", str(spec.backbone_seed), "--model-cache", str(spec.model_cache), "--quiet"]
    if "patches" in spec.kinds:
        argv += ["--patch-grid", str(spec.patch_grid)]
        argv += ["--patch-size", str(spec.patch_size)] if spec.patch_size is not None else []
        argv += ["--patch-jitter", str(spec.patch_jitter)] if spec.patch_jitter is not None else []
    if spec.spatial:
        argv.append("--spatial")
    ext = spec.extraction
    if ext.launcher != "none":
        argv += ["--launcher", ext.launcher, "--shards", str(ext.shards)]
        for key, value in ext.options.items():
            flag = "--" + key.replace("_", "-")
            argv += [flag] if value is True else [] if value is False else [flag, str(value)]
    return argv


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """The extraction dies with the study (even on SIGKILL), so a rerun never meets an orphan holding the lock."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def stage_extract(plan: Plan, log: Log) -> None:
    """Each split: reuse a complete cache of this configuration, refuse another one, else extract (or resume)."""
    estimates = stage_seconds(plan)
    progress = Progress("extract", 2, None)
    for i, split in enumerate(("train", "test")):
        state = inspect_cache(plan.caches[split].path, expected_config(plan.spec, split, plan.precision),
                              plan.splits[split])
        if state.status == "mismatch":
            raise PipelineError(f"{state.path}: a cache of another configuration is there ({'; '.join(state.differences)}); "
                                "move it away, or set [extraction] features to another directory")
        if state.status == "complete":
            progress.update(i + 1, f"{split}: {state.path} complete with this configuration: reused", 0.0)
            continue
        left = sum(estimates[f"extract {s}"] or 0 for s in ("train", "test")[i:]) or None
        progress.update(i, f"{split}: extracting -> {state.path}", left_estimate=left)
        _extract(plan, split, log)
        progress.update(i + 1, f"{split}: done", work=estimates[f"extract {split}"] or 0.0)
    progress.close()


def _extract(plan: Plan, split: str, log: Log) -> None:
    """extract-features in a subprocess: its result lines relayed as they come; on failure, one line of ours
    (its stderr, which may hold a native library's noise after a failed write, is only searched for the cause)."""
    import tempfile

    argv = extract_argv(plan, split)
    log("$ extract-features " + " ".join(argv))
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "extract", *argv], stdout=subprocess.PIPE, stderr=errors,
                                text=True, preexec_fn=_die_with_parent)
        assert proc.stdout is not None
        for line in proc.stdout:
            log("  " + line.rstrip())
        code = proc.wait()
        errors.seek(0)
        lines = errors.read().splitlines()
    if code == 0:
        for line in lines:
            log("  " + line)
        return
    said = [ln for ln in lines if ln.startswith("error:")]
    detail = (said[-1] if said else (lines[-1] if lines else f"exit code {code}")).removeprefix("error: ")
    target = plan.spec.extraction.features
    short = _disk_short(plan, target)
    if short or any("No space left" in ln or "file write failed" in ln for ln in lines):
        raise PipelineError(f"{target}: out of disk space while extracting the {split} split: "
                            f"{short or 'no space left on the device'}; the cache is left incomplete (complete=false) "
                            "and resumes on the same command once there is room")
    raise PipelineError(f"extract-features --split {split} failed: {detail}")


def _disk_short(plan: Plan, where: Path) -> str:
    """'needs N bytes more, F free' when the filesystem of `where` lacks what the study still writes there."""
    fs = existing_parent(where)
    needs = disk_needs(plan)
    need = sum(sum(kinds.values()) for path, kinds in needs.items() if os.stat(path).st_dev == os.stat(fs).st_dev)
    free = shutil.disk_usage(fs).free
    if free >= max(need, 1 << 20):
        return ""
    return f"needs about {max(need - free, 0) + (1 << 20):,} bytes more ({fmt_bytes(need)} still to write, {fmt_bytes(free)} free)"


def is_disk_full(error: BaseException, plan: Plan, where: Path) -> str:
    """A write error that is the disk running out: errno ENOSPC/EDQUOT, or an error while the disk is (nearly) full."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return _disk_short(plan, where) or "no space left on the device"
    if isinstance(error, (OSError, RuntimeError)) and shutil.disk_usage(existing_parent(where)).free < (4 << 20):
        return _disk_short(plan, where) or "no space left on the device"
    return ""


# --- stage 2: the sweep (in this process, heads' functions) ------------------------------------------------
def sweep_options(plan: Plan) -> dict[str, Any]:
    spec = plan.spec
    return {"val_fraction": spec.val_fraction, "val_per_class": spec.val_per_class, "standardize": True}


def stage_sweep(plan: Plan, log: Log) -> Path:
    """Train every (setting, seed) not finished yet, select on validation, score the selection once, summarise."""
    from heads.experiment import Caches, device_of

    spec = plan.spec
    sweep_dir = spec.out / SWEEP
    caches = Caches.load(str(spec.train_cache), str(spec.test_cache), spec.methods, device_of(spec.device), log=log)
    _write_sweep_json(plan, sweep_dir, caches)
    try:
        rows = _train_runs(plan, sweep_dir, caches, log)
        _select_score_summarise(plan, sweep_dir, caches, rows, log)
    except (OSError, RuntimeError) as e:
        short = is_disk_full(e, plan, sweep_dir)
        if not short:
            raise
        where = getattr(e, "filename", None) or sweep_dir
        raise PipelineError(f"{where}: out of disk space during the sweep: {short}; finished runs are kept, the "
                            "interrupted one stays .partial; free some space and rerun the same command") from None
    return sweep_dir


def _write_sweep_json(plan: Plan, sweep_dir: Path, caches: Any) -> None:
    """sweep.json in sweep-heads' form (heads.sweep.summarize reads it); refuse caches other than the runs'."""
    from heads import artifacts
    from heads.sweep import expand, swept_options, sweep_identity

    spec = plan.spec
    cv = {"selection": "cv", "cv_folds": spec.cv_folds} if spec.selection == "cv" else {}  # val: identity as before
    ident = sweep_identity({**sweep_options(plan), **cv}, spec.grid, spec.seeds, caches)
    old = sweep_dir / "sweep.json"
    if old.is_file() and finished_runs(spec.out):
        before = artifacts.read_json(old).get("identity", {})
        differ = diff_keys({k: before.get(k) for k in ("train_cache", "test_cache")},
                           {k: ident[k] for k in ("train_cache", "test_cache")}, labels=("before", "now"))
        if differ:
            raise PipelineError(f"{sweep_dir}: the finished runs were trained on other caches ({'; '.join(differ)}); "
                                "they cannot be reused: give another --out")
    (sweep_dir / "runs").mkdir(parents=True, exist_ok=True)
    untrained = artifacts.weights_note(True, caches.train.attrs.get("backbone_weights")) if caches.train.untrained else ""
    search = {k: v for k, v in spec.sweep_options().items() if k.startswith(("search", "halving"))}
    artifacts.write_json(old, {"name": spec.name, "command": f"study {spec.path}", "auxes": spec.methods,
                               "identity": ident, "swept": swept_options(expand(spec.grid)[1]),
                               "keep_weights": spec.keep_weights, "untrained_note": untrained,
                               **({"search": search} if spec.search != "grid" else {})})


def _planned(plan: Plan, sweep_dir: Path) -> list[Any]:
    """The plan's runs as heads.sweep's PlannedRun (the options run_experiment gets, the run directory)."""
    from heads.sweep import PlannedRun, Setting

    return [PlannedRun(Setting(run.aux, tuple(run.options.items())), run.label, run.seed,
                       sweep_dir / "runs" / f"{run.label}_seed={run.seed}",
                       {"command": "study", "aux": run.aux, "seed": run.seed, **sweep_options(plan), **run.options})
            for run in plan.runs]


def _to_train(plan: Plan, sweep_dir: Path) -> list[tuple[Any, float]]:
    """(PlannedRun, estimated seconds) of every run the sweep trains before selection: the plan's runs, or under
    selection = "cv" each one's F fold runs (heads.cv.fold_runs), in order."""
    from heads.cv import fold_runs

    pairs = list(zip(_planned(plan, sweep_dir), (r.seconds for r in plan.runs)))
    if plan.spec.selection != "cv":
        return pairs
    out = []
    for run, seconds in pairs:
        folds = fold_runs([run], plan.spec.cv_folds)
        out += [(f, seconds / (len(folds) + 1)) for f in folds]  # the plan's share of a final run: ~ one fold's
    return out


def _train_runs(plan: Plan, sweep_dir: Path, caches: Any, log: Log) -> list[Any]:
    """The study's own loop (below), or, with [heads] launcher or search = "halving", sweep-heads' engines."""
    spec = plan.spec
    runs = _to_train(plan, sweep_dir)
    if spec.selection == "cv":
        from heads.cv import check_folds_fit

        check_folds_fit([r for r, _s in runs], caches.train, ("[heads] cv_folds", "labels_per_class"))
    if spec.launcher is None and spec.search == "grid":
        return _train_runs_here(runs, caches, log)
    return _train_runs_engines(plan, sweep_dir, caches, log, [r for r, _s in runs])


def _executor(plan: Plan, sweep_dir: Path, caches: Any, log: Log) -> Any:
    """heads.workers.executor_for: execute(runs) in process or on the spec's [heads] launcher's workers."""
    from types import SimpleNamespace

    from heads.workers import executor_for

    options = {**plan.spec.sweep_options(), "device": plan.spec.device}
    return executor_for(options, SimpleNamespace(auxes=plan.spec.methods, sweep_dir=sweep_dir), caches, False, log)


def _train_runs_engines(plan: Plan, sweep_dir: Path, caches: Any, log: Log, runs: list[Any]) -> list[Any]:
    """heads.workers.executor_for (in process or workers) under heads.search's strategy (grid or successive
    halving: one execute per rung, survivors decided from the runs' validation records); rows as sweep-heads'."""
    from types import SimpleNamespace

    from heads.sweep import search_runs

    spec = plan.spec
    options = {**spec.sweep_options(), "device": spec.device}
    execute = _executor(plan, sweep_dir, caches, log)
    log(f"sweep: {len(runs)} runs, search {spec.search}, "
        f"{spec.launcher + ' launcher' if spec.launcher else 'in process'}"
        f"{f' ({spec.workers} workers)' if options['launcher'] else ''}")
    return search_runs(SimpleNamespace(runs=runs), options, execute, log)


def _train_runs_here(runs: list[tuple[Any, float]], caches: Any, log: Log) -> list[Any]:
    """Every planned run in order: finished ones read back, the others trained by heads' own steps (a bank of
    linear/none heads that differ only in lr or weight decay in one pass, heads.bank.train_bank, when the bank's
    first run comes up; any other run alone, heads.sweep.train_planned_run; test split not scored); one
    progress line each."""
    from heads import artifacts
    from heads.bank import banks_of
    from heads.sweep import read_run_row, train_planned_run

    progress = Progress("sweep", len(runs), None)
    unfinished = [p for p, _s in runs if not artifacts.is_complete(p.run_dir)]
    bank_of = {p.run_dir: bank for bank in banks_of(unfinished)[0] for p in bank}
    rows, said, banked, reused = [], set(), {}, 0
    left = sum(seconds for _p, seconds in runs)

    def once(message: str) -> None:  # the same note for every method of a seed: say it once
        if message not in said:
            said.add(message)
            log(message)

    for i, (p, seconds) in enumerate(runs, 1):
        left -= seconds
        if p.run_dir not in bank_of and artifacts.is_complete(p.run_dir):
            rows.append(read_run_row(p.setting, p.label, p.seed, p.run_dir))
            reused += 1
            continue
        if p.run_dir in bank_of:
            if p.run_dir not in banked:
                banked.update(_train_bank(bank_of[p.run_dir], caches, once))
            row, message = read_run_row(p.setting, p.label, p.seed, p.run_dir), banked[p.run_dir]
        else:
            row, message = train_planned_run(p, caches, False, once)
        rows.append(row)
        progress.update(i, f"{p.run_dir.name}: {message}", left, seconds)
    progress.close(f"({len(runs)} runs, {reused} of them finished earlier and reused)")
    return rows


def _train_bank(bank: list[Any], caches: Any, log: Log) -> dict[Path, str]:
    """One bank of heads (heads.bank.train_bank); a head that fails is recorded as a failed run, as alone."""
    from heads.bank import train_bank
    from heads.sweep import write_failed_run

    trained = train_bank(caches, bank, False, log, lambda r, message, s: write_failed_run(r.run_dir, r.options, message, s))
    return {run.run_dir: message for run, message in trained}


def _select_score_summarise(plan: Plan, sweep_dir: Path, caches: Any, rows: list[Any], log: Log) -> None:
    """runs.csv -> selection.json (validation only) -> the selected runs scored on the test split once ->
    unselected weights pruned -> summary: heads' own steps, in sweep-heads' order."""
    from heads import artifacts
    from heads.plots import plot_labels
    from heads.sweep import (condition_of, expand, prune_weights, score_selected, select_and_record,
                             select_cv_and_finish, swept_options, write_runs_csv, write_summary)

    spec = plan.spec
    swept = swept_options(expand(spec.grid)[1])
    if spec.selection == "cv":  # select on the folds, train the final runs, record (heads.sweep's cv step)
        folds = [p for p, _s in _to_train(plan, sweep_dir)]
        selected, rows = select_cv_and_finish(sweep_dir, spec.methods, folds, rows, swept,
                                              _executor(plan, sweep_dir, caches, log), log)
    else:
        write_runs_csv(sweep_dir / "runs.csv", rows, swept)
        selected = select_and_record(sweep_dir, spec.methods)
    todo = sum(1 for e in selected for rel in e["runs"]
               if not artifacts.read_json(sweep_dir / rel / "metrics.json").get("test"))
    progress = Progress("test", todo, None)
    progress.update(0, "scoring the selected runs on the test split, once", _score_estimate(plan) * todo)
    score_selected(sweep_dir, selected, caches, progress=False, data_root=None)  # no per-run gallery
    progress.close(f"({todo} selected runs scored on the test split once)")
    if spec.keep_weights == "selected":
        prune_weights(sweep_dir, selected, rows)
    summary, _markdown = write_summary(sweep_dir)
    if len({condition_of(e) for e in selected}) > 1:
        plot_labels(sweep_dir / "labels.png", summary, spec.methods, sweep_dir)


def _score_estimate(plan: Plan) -> float:
    """Seconds to score one selected run on the test split (the plan's calibration; 1 s without one)."""
    from .costs import score_seconds

    if plan.calibration is None:
        return 1.0
    costs = [score_seconds(a, plan.splits["test"].images, plan.spatial_hw is not None and a.startswith("dcl"),
                           plan.calibration) for a in plan.spec.methods]
    return sum(costs) / len(costs)
