"""A study plan's estimates: seconds per stage (from the calibration, study.plan.costs), bytes on each filesystem and
in memory, checked against what is free."""

from __future__ import annotations

from heads.cells import K

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from study.plan.costs import (EXTRACTION_PARTS, bank_seconds, can_use_maps, extraction_parts, method_key,
                              run_seconds, score_seconds)
from study.plan.make import SWEEP, Plan, RunPlan, study_rows
from study.spec import StudySpec
from study.plan.units import describe_kinds, fmt_bytes


def run_estimate(plan: Plan, run: RunPlan, shares: dict[str, float] | None = None) -> float:
    """Seconds of one run: its method's calibrated cost over the epochs the epoch rule is expected to train
    (`shares`: epoch_share of this study, read once by the caller; None: the whole ceiling)."""
    spatial = plan.reads_maps(run.aux)
    rows = study_rows(plan.spec, plan.splits["train"].images, plan.classes, run.k)
    share = (shares or {}).get(run.aux, 1.0)
    return run_seconds(run.aux, rows, (run.epochs or plan.spec.epochs) * share, spatial, plan.calibration,
                       run.options, run.ends)


def epoch_share(runs_dir: Path) -> dict[str, float]:
    """Per method, the mean share of its ceiling (--epochs) that this study's finished runs trained under the epoch
    rule (heads.training.epochs: a run stops once validation shows it passed its best); a method with no finished run is
    charged its whole ceiling (share 1), since the rule stops a run only on that evidence."""
    shares: dict[str, list[float]] = {}
    for path in sorted(runs_dir.glob("*/metrics.json")) if runs_dir.is_dir() else []:
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        c = m.get("convergence") or {}
        stopped, whole = c.get("stopped_early_after"), c.get("epochs_trained", 0) >= c.get("ceiling", 1 << 30)
        if m.get("failed") or not (stopped or whole):
            continue  # a failed run, one written before the rule, or a halving rung's cut run
        shares.setdefault(str(m.get("aux")), []).append(min(1.0, c["epochs_trained"] / c["ceiling"]))
    return {aux: sum(v) / len(v) for aux, v in shares.items()}


def plan_shares(plan: Plan) -> dict[str, float]:
    """epoch_share of the study's finished runs, which scales a grid's runs still to train; {} under halving, whose
    expected epochs per run hold its rungs (a resumed halving study counts its finished work by RunPlan.done, and
    the live ETA learns the full budget's epochs from its runs that end)."""
    return {} if plan.spec.search == "halving" else epoch_share(plan.spec.out / SWEEP / "runs")


def extract_parts(plan: Plan, split: str) -> dict[str, float] | None:
    """The plan's seconds of a split's extraction still to run, in its parts (study.plan.costs.extraction_parts):
    all 0 when its cache is complete; None without the backbone timed."""
    state = plan.caches[split]
    if state.status == "complete":
        return dict.fromkeys(EXTRACTION_PARTS, 0.0)
    if plan.calibration is None:
        return None
    left = plan.splits[split].images - (state.rows_done if state.status == "incomplete" else 0)
    return extraction_parts(left, plan.input_cost, plan.calibration, PIPELINE_FACTOR[plan.spec.spatial])


def stage_seconds(plan: Plan) -> dict[str, float | None]:
    """Estimated seconds of each stage still to run (finished caches count 0)."""
    cal = plan.calibration
    spec = plan.spec
    out: dict[str, float | None] = {"dataset": 0.0}
    for split in ("train", "test"):
        parts = extract_parts(plan, split)
        out[f"extract {split}"] = None if parts is None else sum(parts.values())
    if cal is None:
        return {**out, "sweep": None, "report": None}
    shares = plan_shares(plan)
    for run in plan.runs:  # a calibration taken under load: its quiet figures x what that load implies
        run.seconds = run_estimate(plan, run, shares) * cal.slowdown
    if spec.selection == "cv":
        add_cv_costs(plan)
    else:
        share_banks(plan.runs, lambda run: cal.methods[method_key(run.aux, False, run.options)].overhead_s)
    selected = {(r.aux, r.k, r.seed) for r in plan.runs}
    scoring = sum(score_seconds(a, plan.splits["test"].images, plan.reads_maps(a), cal)
                  for a, _k, _s in selected)
    # once a sweep: the first fit's lazy set-up; its summary's intervals (the report's) and its two figures
    once = cal.first_run_s + report_intervals(spec) * cal.bootstrap_s_per_interval + cal.report_figures_s
    out["sweep"] = ((cache_bytes_in_memory(plan) + scratch_bytes(plan)) / cal.read_bytes_per_s
                    + scoring + once) * cal.slowdown + sum(r.seconds * (1 - r.done) for r in plan.runs)
    rows = len(spec.methods) * len(spec.labels_per_class)  # selected rows: each redraws its figures (+ 2 of the study)
    out["report"] = ((rows + 2) * cal.report_figures_s + report_intervals(spec) * cal.bootstrap_s_per_interval
                     ) * cal.slowdown
    return out


def sweep_range(plan: Plan) -> tuple[float, float] | None:
    """(low, high) seconds of the sweep: each run's estimate (stage_seconds sets it) widened by its method's
    measured spread (the middle half of its timed epochs, study.plan.costs.MethodCost.spread), scoring and reading as
    estimated; None before a calibration."""
    cal = plan.calibration
    if cal is None:
        return None
    total = stage_seconds(plan)["sweep"] or 0.0
    widen = 0.0
    for run in plan.runs:
        spatial = plan.reads_maps(run.aux)
        spread = min(cal.methods[method_key(run.aux, spatial, run.options)].spread, 0.9)
        widen += run.seconds * (1 - run.done) * spread
    low, high = max(total - widen, 0.0), total + widen
    if cal.slowdown > 1:  # under load: from what a quiet machine would take to the share the calibration itself got
        low = min(low, max((sweep_quiet(plan) or 0.0) - widen / cal.slowdown, 0.0))
        high = max(high, high / cal.slowdown * cal.worst_slowdown)
    return low, high


def sweep_earliest(plan: Plan) -> float | None:
    """The sweep's seconds if the epoch rule stopped every run at its earliest (epoch patience + 1; under halving,
    the runs that reach the full budget's rung, in that rung) where this study has not yet shown how far runs go (a
    method with finished runs keeps its measured share); None without a calibration, without the rule (patience 0),
    or when that is not fewer epochs than planned."""
    from heads.training.epochs import earliest_stop

    spec, cal = plan.spec, plan.calibration
    stop = earliest_stop(spec.patience)
    if cal is None or stop is None or stop >= spec.epochs:
        return None
    shares = plan_shares(plan)
    if all(run.aux in shares for run in plan.runs):  # every method's runs have shown how far they go
        return None

    def earliest(run: RunPlan) -> float:  # the share of its planned epochs a run trains, stopped at its earliest
        if run.aux in shares:
            return shares[run.aux]
        if spec.search != "halving":
            return stop / spec.epochs
        expected = run.epochs or spec.epochs  # halving: its full-budget rung's epochs the rule can leave unspent
        return 1.0 - run.full * max(spec.epochs - max(stop, run.full_from + 1), 0) / expected

    planned = sum(run_estimate(plan, run, shares) * (1 - run.done) for run in plan.runs)
    if planned <= 0:
        return None
    fewer = sum(run_estimate(plan, run, {run.aux: earliest(run)}) * (1 - run.done) for run in plan.runs)
    total = stage_seconds(plan)["sweep"] or 0.0
    runs = sum(run.seconds * (1 - run.done) for run in plan.runs)
    return total - runs + runs * fewer / planned


def sweep_quiet(plan: Plan) -> float | None:
    """The sweep's seconds on a quiet machine: its estimate without the slowdown the calibration's load implies
    (the same as the estimate when the calibration was quiet)."""
    cal = plan.calibration
    if cal is None:
        return None
    return (stage_seconds(plan)["sweep"] or 0.0) / cal.slowdown


def cv_folds_of(plan: Plan, k: K) -> int:
    """F for K under selection = "cv" (heads.search.cv.folds_for); 1 under validation selection."""
    from heads.search.cv import folds_for

    return folds_for(k, plan.spec.cv_folds) if plan.spec.selection == "cv" else 1


def cv_run_counts(plan: Plan) -> tuple[int, int]:
    """(fold runs, final runs) of a cross-validated study: F per (setting, seed), one final per (method, K, seed)."""
    folds = sum(cv_folds_of(plan, r.k) for r in plan.runs)
    return folds, len({(r.aux, r.k, r.seed) for r in plan.runs})


def add_cv_costs(plan: Plan) -> None:
    """selection = "cv": each (setting, seed) trains F fold runs (each on (F-1)/F of the K rows, costed as a whole
    run: the unlabelled rows and the per-step work do not shrink), and each (method, K, seed) one final run, its
    cost shared by the settings that competed for it. A resumed study: the share done is its fold runs' and its
    final run's that finished (RunPlan.cv_done)."""
    groups: dict[tuple, list[RunPlan]] = {}
    for run in plan.runs:
        groups.setdefault((run.aux, run.k, run.seed), []).append(run)
    for group in groups.values():
        final = sum(r.seconds for r in group) / len(group)
        for run in group:
            run.final_s = final / len(group)
            folds_s = run.seconds * cv_folds_of(plan, run.k)
            run.seconds = folds_s + run.final_s
            folds_done, final_done = run.cv_done  # a resumed study (study.plan.make.mark_done)
            run.done = (folds_done * folds_s + final_done * run.final_s) / run.seconds if run.seconds else 0.0


def share_banks(runs: list[RunPlan], own_work: Callable[[RunPlan], float]) -> None:
    """Runs that train as one bank (heads.training.bank: linear/none, same seed and options but lr / weight decay) share
    the bank's time (study.plan.costs.bank_seconds: training shared, each run's `own_work`, its run directory, not)
    equally."""
    from heads.training.bank import bank_key

    groups: dict[tuple, list[RunPlan]] = {}
    for run in runs:
        key = bank_key(run.planned)  # the sweep's own rule: which runs share a bank
        if key is not None:
            groups.setdefault(key, []).append(run)
    for group in (g for g in groups.values() if len(g) > 1):
        each = bank_seconds([r.seconds for r in group], [own_work(r) for r in group]) / len(group)
        for run in group:
            run.seconds = each


def report_intervals(spec: StudySpec) -> int:
    """The bootstraps the report computes at each K: a band per method (the figure), each method against its own
    baseline (table and figure share it) and each other method against the linear probe (study.report.write)."""
    from heads.options import BASELINE_OF

    own = sum(BASELINE_OF.get(m) in spec.methods for m in spec.methods)
    linear = len(spec.methods) - 1 if "linear" in spec.methods else 0
    return len(spec.labels_per_class) * (len(spec.methods) + own + linear)


def cache_bytes(plan: Plan, split: str) -> tuple[int, int]:
    """(features bytes, spatial-map bytes before compression) of one split's cache."""
    n = plan.splits[split].images
    feats = n * (plan.per_image - plan.patch_inputs) * plan.dim * 4 + n * plan.patch_inputs * plan.dim * 2  # patches: fp16
    maps = 0
    if plan.spatial_hw is not None:
        h, w = plan.spatial_hw
        maps = n * (1 + (plan.spec.num_views if "rcm" in plan.spec.kinds else 0)) * h * w * plan.dim * 2
    return feats, maps


def map_bytes_read(plan: Plan) -> int:
    """Spatial-map bytes the sweep reads (float16): the training cache's, and the test split's originals."""
    if not any(can_use_maps(m) for m in plan.spec.methods):
        return 0
    _feats, maps = cache_bytes(plan, "train")
    _test_feats, test_maps = cache_bytes(plan, "test")
    return maps + (test_maps // (1 + plan.spec.num_views) if "rcm" in plan.spec.kinds else test_maps)


def maps_out_of_core(plan: Plan) -> bool:
    """heads' --maps-in-memory auto on a CPU: maps beyond heads.training.data.MAPS_MEMORY_BUDGET are read out of core."""
    from heads.training.data import MAPS_MEMORY_BUDGET

    return map_bytes_read(plan) > MAPS_MEMORY_BUDGET


def view_bytes_read(plan: Plan) -> int:
    """The training cache's shuffled views' pooled features (all but the original's)."""
    feats, _maps = cache_bytes(plan, "train")
    return feats - plan.splits["train"].images * plan.dim * 4


def views_out_of_core(plan: Plan) -> bool:
    """heads' --maps-in-memory auto on a CPU: views beyond heads.training.data.VIEWS_MEMORY_BUDGET are read out of core."""
    from heads.training.data import VIEWS_MEMORY_BUDGET

    return view_bytes_read(plan) > VIEWS_MEMORY_BUDGET


def scratch_bytes(plan: Plan) -> int:
    """The uncompressed scratch copies heads reads out of core (maps and views beyond their budgets)."""
    return map_bytes_read(plan) * maps_out_of_core(plan) + view_bytes_read(plan) * views_out_of_core(plan)


def cache_bytes_in_memory(plan: Plan) -> int:
    """What the sweep holds in memory: the training cache's features, the test features, and the spatial maps
    and views unless they are read out of core (then the page cache holds them, not the process)."""
    feats, _maps = cache_bytes(plan, "train")
    test_feats = plan.splits["test"].images * plan.dim * 4  # scoring reads the original features only
    return feats + test_feats + map_bytes_read(plan) - scratch_bytes(plan)


def _on_filesystem(needs: dict[Path, dict[str, int]], path: Path) -> dict[str, int]:
    """The entry of `needs` for the filesystem holding `path` (keyed by its first existing directory seen)."""
    where = existing_parent(path)
    for known in needs:
        if os.stat(known).st_dev == os.stat(where).st_dev:
            return needs[known]
    return needs.setdefault(where, {})


def disk_needs(plan: Plan) -> dict[Path, dict[str, int]]:
    """Bytes still to be written, per filesystem (named by an existing directory on it), by kind."""
    needs: dict[Path, dict[str, int]] = {}
    for split, state in plan.caches.items():
        if state.status == "complete":
            continue
        feats, maps = cache_bytes(plan, split)
        done = state.rows_done / max(plan.splits[split].images, 1) if state.status == "incomplete" else 0.0
        where = _on_filesystem(needs, state.path)
        where["caches"] = where.get("caches", 0) + int(feats * (1 - done))
        where["spatial maps"] = where.get("spatial maps", 0) + int(maps * (1 - done))
    left = [r for r in plan.runs if not (r.planned.run_dir / "metrics.json").is_file()]
    def model_bytes(run: RunPlan) -> int:
        spatial = plan.reads_maps(run.aux)
        return plan.calibration.methods[method_key(run.aux, spatial, run.options)].model_bytes if plan.calibration \
            else 25 * 2**20
    scored = len({(r.aux, r.k, r.seed) for r in left})
    if scratch_bytes(plan):  # heads copies maps and views, uncompressed, to scratch files while a sweep runs
        scratch = _on_filesystem(needs, Path(tempfile.gettempdir()))
        scratch["out-of-core scratch copy"] = scratch.get("out-of-core scratch copy", 0) + scratch_bytes(plan)
    where = _on_filesystem(needs, plan.spec.out)
    where["run directories"] = where.get("run directories", 0) + sum(model_bytes(r) + RUN_FILES_BYTES for r in left) + scored * SCORED_FILES_BYTES
    # heads.training.rungs: each rung run's weights, momentum and (when another epoch's) best weights, at most 3 model.pt
    rung = sum(3 * model_bytes(r) for r in left if r.stoppable)
    if rung:  # at their peak after the first rung, before the stopped runs' are deleted
        where["halving's rung states"] = where.get("halving's rung states", 0) + rung
    return needs


def existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_shortfalls(plan: Plan) -> list[str]:
    """One line per filesystem whose free space is below what the study still has to write."""
    short = []
    for where, kinds in disk_needs(plan).items():
        need, free = sum(kinds.values()), shutil.disk_usage(where).free
        if need > free:
            short.append(f"{where}: the study needs {fmt_bytes(need)} more ({describe_kinds(kinds)}) and only "
                         f"{fmt_bytes(free)} is free ({need - free:,} bytes short)")
    return short


def peak_memory(plan: Plan) -> int:
    """The sweep's peak: the caches it holds in memory, the runtime, one DCL batch of maps in float32."""
    batch_maps = 0
    if any(plan.reads_maps(m) for m in plan.spec.methods):
        h, w = plan.spatial_hw
        batch_maps = 2 * plan.spec.batch_size * 2 * h * w * plan.dim * 4 * 3  # both streams, fwd + bwd copies
    return cache_bytes_in_memory(plan) + RUNTIME_BYTES + batch_maps


RUN_FILES_BYTES = 150_000  # config, history, metrics, confusion.json, curves.png of one run


SCORED_FILES_BYTES = 700_000  # a selected run adds predictions.csv, confusion.png and predictions.png


RUNTIME_BYTES = 600 * 2**20  # the Python process with torch loaded


PIPELINE_FACTOR = {True: 0.93, False: 0.96}  # whole extraction / model alone, measured (README "Speed")
