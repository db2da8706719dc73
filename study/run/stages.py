"""The stages of a study, each resumable: dataset -> extract train and test -> sweep -> (seed growth) -> report.

Stage 1 runs through its command in a subprocess (`python -m extract`, i.e. extract-features): TensorFlow
never enters this process. Stage 2 runs here, through heads' own functions (Caches.load, run_specs,
select, score_saved_run, write_summary). Each stage finds its finished work on disk: a complete cache
whose config matches, a run directory renamed into place, a scored run's metrics.json. So a study
killed at any moment (SIGKILL included) continues where it stopped when the same command is rerun.

Seed growth ([heads] max_seeds; `stage_grow`, its rule in GROWTH_RULE): the spec's seeds are a pilot; from the
largest seed-to-seed spread of its comparisons (never their effect) the study computes the seeds that detect
[heads] target_effect and, when more are needed, adds seeds (up to max_seeds) and runs the sweep stage again,
which reuses every finished run; the decision is made again once on the grown seeds. A rerun makes the same
decisions from the same files, so it reuses everything and reaches the same seeds.

Directory `<out>/`: study.json (spec, identity, time per stage), stage_clock.json (while a stage runs: its time so
far, study.run.timing), calibration.json, sweep/ (a sweep-heads
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
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable


from pipeline.diff import diff_keys
from pipeline.errors import PipelineError
from pipeline.files import DiskFull, lock_output
from pipeline.progress_lines import parse_progress_line

from study.plan.estimates import disk_needs, existing_parent, stage_seconds
from study.plan.growth import GROWTH, GROWTH_RULE, GROWTH_STEPS, growth_decision, next_seeds
from study.plan.make import SWEEP, Plan, expected_config, inspect_cache, sweep_plan
from study.plan.units import fmt_bytes
from study.run.progress import Progress
from study.run.sweep_lines import ETA_FILE, SweepLines

STATE = "study.json"

Log = Callable[[str], None]


# --- the study's identity: what finished work depends on ------------------------------------------------
def identity(plan: Plan) -> dict[str, Any]:
    """Settings every finished run depends on: a change to any of them is refused once runs exist."""
    spec = plan.spec
    return {"epochs": spec.epochs, "patience": spec.patience, "batch_size": spec.batch_size,
            "heads_precision": plan.heads_precision,
            "device": plan.device.split(":")[0], "val_per_class": spec.val_per_class,
            "val_fraction": None if spec.val_per_class else spec.val_fraction,
            "caches": {s: {**expected_config(spec, s), "path": str(p)}
                       for s, p in (("train", spec.train_cache), ("test", spec.test_cache))}}


def finished_runs(out: Path) -> int:
    runs = out / SWEEP / "runs"
    return sum(1 for p in runs.iterdir() if (p / "metrics.json").is_file()) if runs.is_dir() else 0


def check_identity(plan: Plan) -> None:
    """Refuse a change that invalidates finished runs (other epochs, caches, validation rule), naming it."""
    from heads.training import artifacts

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


def write_state(plan: Plan, stage: str | None = None, seconds: float = 0.0,
                planned: dict[str, float | None] | None = None, load: dict[str, float] | None = None) -> None:
    """study.json: the spec, the identity, the seconds spent in each stage (summed over resumes) and, beside them,
    what the plan said each stage would take (`planned`: the first plan that found the stage's work still to do;
    a resumed study's plan covers only what is left (study.plan.make.mark_done), so it does not replace it)."""
    from heads.training import artifacts

    path = plan.spec.out / STATE
    state = artifacts.read_json(path) if path.is_file() else {}
    timing, loads = state.get("stage_seconds", {}), state.get("stage_load", {})
    if stage and load:  # the load seen over the stage (study.run.timing), weighted over resumes
        from study.run.timing import merge_load

        loads[stage] = merge_load(loads.get(stage), timing.get(stage, 0.0), load, seconds)
    if stage:
        timing[stage] = timing.get(stage, 0.0) + seconds
    planned_before = state.get("stage_planned", {})
    for name, value in (planned or {}).items():
        if value and name not in planned_before:
            planned_before[name] = value
            if plan.calibration is not None:
                state.setdefault("stage_planned_by", {})[name] = "quick" if plan.calibration.quick else "study --plan"
    state.update({"spec": str(plan.spec.path), "spec_text": plan.spec.path.read_text(), "identity": identity(plan),
                  "stage_seconds": timing, "stage_load": loads, "stage_planned": planned_before, "command": "study " + " ".join(sys.argv[1:])})
    path.parent.mkdir(parents=True, exist_ok=True)
    artifacts.write_json(path, state)


# --- stage 0: dataset ---------------------------------------------------------------------------------
def stage_dataset(plan: Plan, log: Log) -> None:
    from study.plan.make import dataset_present, read_splits

    spec = plan.spec
    if spec.download and not dataset_present(spec):
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
            "--rcm-k", str(spec.rcm_k), "--batch-size", str(spec.extract_batch_size), "--precision", spec.precision,
            "--seed", str(spec.backbone_seed), "--model-cache", str(spec.model_cache), "--quiet", *spec.backbone_argv()]
    if "patches" in spec.kinds:
        argv += ["--patch-grid", str(spec.patch_grid)]
        argv += ["--patch-size", str(spec.patch_size)] if spec.patch_size is not None else []
        argv += ["--patch-jitter", str(spec.patch_jitter)] if spec.patch_jitter is not None else []
    if spec.spatial:
        argv.append("--spatial")
    ext = spec.extraction
    argv.append("--progress-lines")  # rows done, for the live ETA (ExtractLines; a local launcher sums its shards')
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
    from study.plan.estimates import extract_parts

    parts = {split: extract_parts(plan, split) for split in ("train", "test")}
    # the extraction runs in child processes: no unit of work here carries this process's own set-up
    progress = Progress("extract", 2, None, eta_file=plan.spec.out / ETA_FILE, first_one_off=False)
    for i, split in enumerate(("train", "test")):
        state = inspect_cache(plan.caches[split].path, expected_config(plan.spec, split),
                              plan.splits[split])
        state.refuse_mismatch(split)
        if state.status == "complete":
            progress.update(i + 1, f"{split}: {state.path} complete with this configuration: reused", 0.0)
            continue
        later = _summed([parts[s] for s in ("train", "test")[i + 1:]])
        lines = ExtractLines(progress, i, parts[split], later)
        # (no estimate, e.g. the quick calibration's, which does not time the backbone: splits done at their rate)
        progress.update(i, f"{split}: extracting -> {state.path}", left_estimate=lines.left())
        # the study's own lock on the cache while its extract-features child writes it: another study that wants
        # this cache is told this study's pid (the child holds the cache's own lock)
        with lock_output(Path(str(state.path) + ".study"), what="study", names=state.path):
            _extract(plan, split, log, lines.on_rows)
        lines.ended(f"{split}: done")
    progress.close()


def _summed(parts: list[dict[str, float] | None]) -> dict[str, float] | None:
    """Parts of work added up per part (None when any is unknown)."""
    if any(p is None for p in parts):
        return None
    out: dict[str, float] = {}
    for p in parts:
        for key, seconds in (p or {}).items():
            out[key] = out.get(key, 0.0) + seconds
    return out


class ExtractLines:
    """One split's extraction as the live ETA sees it, in the plan's parts (study.plan.costs.extraction_parts), each
    a kind of work whose ratio to its plan the ETA learns (LearningEta): the child's start-up (imports, the
    backbone's load) before its first progress line, its rows (extract-features' progress lines: rows done of the
    rows it computes, pipeline.progress_lines), and its finish after the last row (its views figure, its exit).
    The first split's start-up and finish thus correct the next split's."""

    def __init__(self, progress: Progress, index: int, parts: dict[str, float] | None,
                 later: dict[str, float] | None):
        self.progress, self.index, self.parts, self.later = progress, index, parts, later
        self.done = 0.0  # the share of the split's rows done
        self.ticked = False

    def rest(self) -> dict[str, float]:
        """The plan's seconds of the split not yet reported, per part (all of it before any progress line)."""
        parts = self.parts or {}
        return {"start-up": 0.0 if self.ticked else parts.get("start-up", 0.0),
                "rows": (1 - self.done) * parts.get("rows", 0.0), "finish": parts.get("finish", 0.0)}

    def left(self) -> dict[str, float] | None:
        """The plan's seconds left of this split and the later ones, per part; None without an estimate."""
        return None if self.parts is None or self.later is None else _summed([self.rest(), self.later])

    def on_rows(self, done: int, total: int) -> None:
        if self.parts is None:  # no estimate to learn against
            return
        before, first = self.rest(), not self.ticked
        self.done, self.ticked = (min(done / total, 1.0) if total else 1.0), True
        after = self.rest()
        if first:  # the child's start-up and the rows of its first line: one unit, mostly start-up
            self.progress.tick(self.index, self.left(), before["start-up"] + before["rows"] - after["rows"],
                               "start-up")
        else:
            self.progress.tick(self.index, self.left(), before["rows"] - after["rows"], "rows")

    def ended(self, note: str) -> None:
        """The child has exited: its finish (and whatever no progress line reported) is done."""
        known = self.parts is not None
        # without any progress line (a cluster launcher's shards) the whole split is one unit of mixed parts: one-off
        self.progress.update(self.index + 1, note, left_estimate=self.later if known else None,
                             work=sum(self.rest().values()) if known else 0.0,
                             kind="finish" if self.ticked else "split", one_off=not self.ticked)


def _extract(plan: Plan, split: str, log: Log, on_rows: Callable[[int, int], None] | None = None) -> None:
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
            rows = parse_progress_line(line)
            if rows is None:
                log("  " + line.rstrip())
            elif on_rows is not None:
                on_rows(*rows)
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
    if short or any("No space left" in ln or "file write failed" in ln or "out of disk space" in ln for ln in lines):
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
    if isinstance(error, DiskFull) or (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)):
        return _disk_short(plan, where) or "no space left on the device"
    if isinstance(error, (OSError, RuntimeError)) and shutil.disk_usage(existing_parent(where)).free < (4 << 20):
        return _disk_short(plan, where) or "no space left on the device"
    return ""


# --- stage 2: the sweep (in this process: heads' one sweep engine) ------------------------------------------
def stage_sweep(plan: Plan, log: Log) -> Path:
    """heads.search.sweep.run_sweep on the study's sweep (study.plan.make.sweep_plan): train every (setting, seed) not finished
    yet (in process or on the [heads] launcher's workers, grid or halving), select, score the selection once,
    summarise. A full disk is one line naming the path."""
    from heads.training.experiment import Caches, device_of
    from heads.search.sweep import run_sweep
    from heads.search.workers import executor_for

    spec = plan.spec
    sweep = sweep_plan(spec, plan.heads_precision)
    caches = Caches.load(str(spec.train_cache), str(spec.test_cache), spec.methods, device_of(spec.device), log=log)
    if spec.selection == "cv":
        from heads.search.cv import check_folds_fit

        check_folds_fit(sweep.runs, caches.train, ("[heads] cv_folds", "labels_per_class"))
    here = spec.launcher in (None, "in-process")
    if not here or spec.search != "grid":
        log(f"sweep: {len(sweep.runs)} runs, search {spec.search}, "
            f"{spec.launcher + ' launcher' if spec.launcher not in (None, 'in-process') else 'in process'}"
            f"{f' ({spec.workers} workers)' if sweep.how.launch.launcher else ''}")
    lines = SweepLines(plan, sweep.runs, halving=spec.search == "halving") if here else None
    execute = executor_for(sweep, caches, False, log, lines.on_run if lines else None, lines.on_epoch if lines else None)
    try:
        run_sweep(sweep, caches, execute, log, command=f"study {spec.path}", grow=True,
                  scoring=lambda todo: scoring_lines(plan, todo, lines))
    except (OSError, RuntimeError, DiskFull) as e:
        short = is_disk_full(e, plan, sweep.sweep_dir)
        if not short:
            raise
        where = getattr(e, "filename", None) or getattr(e, "path", None) or sweep.sweep_dir
        raise PipelineError(f"{where}: out of disk space during the sweep: {short}; finished runs are kept, the "
                            "interrupted one stays .partial; free some space and rerun the same command") from None
    return sweep.sweep_dir


def scoring_lines(plan: Plan, todo: int, trained: "SweepLines | None" = None) -> Callable[[], None]:
    """The test-scoring progress line (before), and the closing one (the function returned, after); the training's
    own lines (`trained`) end here when they have not ended yet (halving's rungs)."""
    if trained is not None:
        trained.finish()
    progress = Progress("test", todo, None)
    progress.update(0, "scoring the selected runs on the test split, once", _score_estimate(plan) * todo)
    return lambda: progress.close(f"({todo} selected runs scored on the test split once)")


def _score_estimate(plan: Plan) -> float:
    """Seconds to score one selected run on the test split (the plan's calibration; 1 s without one)."""
    from study.plan.costs import score_seconds

    if plan.calibration is None:
        return 1.0
    costs = [score_seconds(a, plan.splits["test"].images, plan.reads_maps(a),
                           plan.calibration) for a in plan.spec.methods]
    return sum(costs) / len(costs)


# --- seed growth toward the target effect (the decision: study.plan.growth) ---------------------------------
def stage_grow(plan: Plan, log: Log, sweep: Callable[[Plan], None]) -> Plan:
    """[heads] max_seeds: decide on the pilot's spread, grow the seeds and rerun the sweep stage (`sweep(plan)`),
    at most GROWTH_STEPS times; the decisions go to study.json ("growth"). The plan of the seeds it ended with."""
    from heads.training import artifacts
    from heads.results.stats import MAX_SEEDS_SEARCHED

    if plan.spec.max_seeds is None:
        return plan
    steps = []
    for _ in range(GROWTH_STEPS + 1):
        step = growth_decision(plan)
        steps.append(step)
        n, goal = len(plan.spec.seeds), step["grow_to"]
        largest = step["largest"]
        said = (f"largest s_d {100 * largest['s_d']:.2f} points ({largest['method']} vs {largest['baseline']} at "
                f"K = {largest['k']}), {step['needed'] or f'more than {MAX_SEEDS_SEARCHED:,}'} seeds for {plan.spec.target_effect:g} "
                "points" if largest else step["why"])
        if goal <= n or len(steps) > GROWTH_STEPS:
            if goal > n:
                step["why"] += f"; not grown: the study decides at most {GROWTH_STEPS} times"
                step["grow_to"] = n
            log(f"seeds: {n}: {said}; {step['why']}")
            break
        seeds = list(plan.spec.seeds) + next_seeds(plan.spec.seeds, goal - n)
        log(f"seeds: {n} -> {goal} ({said}; max_seeds {plan.spec.max_seeds}): adding seeds "
            f"{', '.join(map(str, seeds[n:]))}")
        plan = grown_plan(plan, replace(plan.spec, seeds=seeds))
        sweep(plan)
    state = artifacts.read_json(plan.spec.out / STATE)
    state[GROWTH] = {"rule": GROWTH_RULE, "pilot": steps[0]["seeds"], "steps": steps, "seeds": list(plan.spec.seeds)}
    artifacts.write_json(plan.spec.out / STATE, state)
    return plan


def recorded_growth(plan: Plan) -> dict[str, Any] | None:
    """study.json's growth record when it was made from this spec's seeds, target and cap (a rerun then starts from
    the seeds it grew to: the same decisions, and the pilot's selection never prunes the grown one's weights)."""
    from heads.training import artifacts

    spec, path = plan.spec, plan.spec.out / STATE
    record = (artifacts.read_json(path).get(GROWTH) if path.is_file() else None) or {}
    first = (record.get("steps") or [{}])[0]
    same = (record.get("pilot") == list(spec.seeds) and first.get("target_effect") == spec.target_effect
            and first.get("max_seeds") == spec.max_seeds and spec.max_seeds is not None)
    return record if same else None


def resume_growth(plan: Plan, log: Log) -> tuple[Plan, bool]:
    """(the plan at the seeds a recorded growth reached, True), or (the plan, False) when there is none to resume."""
    record = recorded_growth(plan)
    if record is None or record["seeds"] == list(plan.spec.seeds):
        return plan, record is not None
    log(f"seeds: {len(record['seeds'])}, as this study grew them before from the pilot's spread (study.json growth): "
        f"{', '.join(map(str, record['seeds']))}")
    return grown_plan(plan, replace(plan.spec, seeds=list(record["seeds"]))), True


def grown_plan(plan: Plan, spec: Any) -> Plan:
    """The plan of the grown seeds, with the plan's calibration (the same shapes) and its runs' estimates."""
    from study.plan.make import make_plan

    grown = make_plan(spec)
    grown.calibration = plan.calibration
    if grown.calibration is not None:
        stage_seconds(grown)
    return grown
