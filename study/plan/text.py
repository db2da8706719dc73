"""What `study --plan` prints: the stages with their sizes, estimates and disk, the runs per method and K."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pipeline.precision import cpu_model_name

from study.plan.costs import Calibration, input_equivalents
from study.plan.estimates import cache_bytes_in_memory, cv_run_counts, disk_needs, map_bytes_read, maps_out_of_core, peak_memory, stage_seconds, sweep_earliest, sweep_quiet, sweep_range, view_bytes_read, views_out_of_core
from study.plan.make import Plan
from heads.cells import k_text
from study.spec import StudySpec
from study.plan.units import describe_kinds, fmt_bytes, fmt_seconds

def describe(plan: Plan) -> str:
    """What `study --plan` prints: stages, inputs, runs per method and K, disk, memory, time per stage."""
    spec, cal = plan.spec, plan.calibration
    times = stage_seconds(plan)
    lines = [f"study {spec.name} ({spec.path}) -> {spec.out}"]
    if "random" in spec.backbone or spec.untrained_backbone:
        lines.append(f"NOTE: backbone {spec.backbone} has random, UNTRAINED weights: the numbers will say nothing "
                     "about a pretrained model")
    lines += [f"machine: {cpu_model_name()} ({os.cpu_count()} cores); extraction precision {spec.precision}"
              f"{f' (likely {plan.precision} here; extract-features resolves it where it runs)' if spec.precision == 'auto' else ''}; heads on {plan.device} "
              f"in {plan.heads_precision}", "", "stages:"]
    train, test = plan.splits["train"], plan.splits["test"]
    lines.append(f"  1 dataset   {spec.data_root}: {plan.classes} classes, {train.images} train / {test.images} test "
                 f"images{' (to download)' if spec.download and train.image_id is None else ''}")
    views = " + ".join(view_text(spec, k) for k in spec.kinds)
    maps = f", spatial maps {plan.spatial_hw[0]}x{plan.spatial_hw[1]}" if plan.spatial_hw else ""
    for i, split in enumerate(("train", "test")):
        state = plan.caches[split]
        n = plan.splits[split].images
        what = {"complete": "complete, config matches: reused", "missing": "to extract",
                "incomplete": f"incomplete ({state.rows_done}/{n} rows): resumes",
                "mismatch": "HOLDS ANOTHER CONFIGURATION: " + "; ".join(state.differences)}[state.status]
        lines.append(f"  {2 if i == 0 else ' '} extract   {split}: {n} images x {plan.per_image} inputs = "
                     f"{n * plan.per_image:,} backbone inputs ({views}{maps}) at {spec.image_size} px -> {state.path}: "
                     f"{what}; ETA {fmt_seconds(times[f'extract {split}'])}")
    ext = spec.extraction
    if ext.launcher != "none" and any(plan.caches[s].status != "complete" for s in ("train", "test")):
        lines.append(f"            extraction on the {ext.launcher} launcher in {ext.shards} shards: planned as one "
                     "process on this machine; the shards' own start-ups and their merge are not in it"
                     f"{', nor a queue' if ext.launcher != 'local' else ''}")
    lines.append(f"  3 sweep     {len(plan.runs)} runs ({len(spec.methods)} methods x K {', '.join(k_text(k) for k in spec.labels_per_class)} "
                 f"x seeds {', '.join(map(str, spec.seeds))}), {spec.epochs} epochs each; ETA {fmt_seconds(times['sweep'])}"
                 f"{range_text(sweep_range(plan))}")
    earliest = sweep_earliest(plan)
    if earliest is not None:
        which = "every run that reaches the full budget" if spec.search == "halving" else "every run"
        lines.append(f"            epoch rule (patience {spec.patience}): {which} is planned at its whole {spec.epochs} "
                     f"epochs; runs that stop at their earliest (epoch {spec.patience + 1}) would make it "
                     f"{fmt_seconds(earliest)} (the live ETA learns each (method, K)'s epochs from its runs that end)")
    lines += search_lines(plan)
    lines += target_lines(plan)
    if spec.selection == "cv":
        folds, finals = cv_run_counts(plan)
        lines.append(f"            selection: cross-validation within the K labelled rows of each class (heads.search.cv; "
                     f"{spec.cv_folds or 'min(K, 5)'} folds): {folds} fold runs, then {finals} final runs on all K rows; "
                     "the validation rows are not used")
    lines.append(f"  4 report    report.md + report.html, {spec.interval} intervals; ETA {fmt_seconds(times['report'])}")
    lines += ["", *runs_table(plan), ""]
    lines += disk_lines(plan)
    parts = [f"spatial maps {fmt_bytes(map_bytes_read(plan))}"] * maps_out_of_core(plan) + \
        [f"views {fmt_bytes(view_bytes_read(plan))}"] * views_out_of_core(plan)
    out_of_core = (f"; {' and '.join(parts)} read out of core through a scratch copy in {tempfile.gettempdir()} "
                   "(--maps-in-memory auto)") if parts else ""
    lines.append(f"memory: the sweep's peak about {fmt_bytes(peak_memory(plan))} (caches in memory "
                 f"{fmt_bytes(cache_bytes_in_memory(plan))}{out_of_core}); {fmt_bytes(_available_memory())} available")
    if cal is not None:
        lines.append(calibration_line(cal))
        lines += load_lines(plan)
    total = [t for t in times.values()]
    lines.append(f"total ETA: {fmt_seconds(sum(t for t in total if t)) if all(t is not None for t in total) else 'not estimated (run --plan for a calibration)'}")
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)


def search_lines(plan: Plan) -> list[str]:
    """The sweep's engines when not the default: successive halving's stoppable runs and budget, the launcher."""
    spec, lines = plan.spec, []
    if spec.launcher:
        lines.append(f"            runs trained {'in process' if spec.launcher == 'in-process' else f'by {spec.workers} {spec.launcher} workers'} "
                     "(heads.search.workers)")
    if spec.search == "halving":
        stop = [r for r in plan.runs if r.stoppable]
        expected = sum(r.epochs or spec.epochs for r in plan.runs)
        listed = len(stop) <= LISTED_STOPPABLE
        lines.append(f"            search: successive halving (eta {spec.halving_eta}, {spec.halving_rungs} rungs; "
                     f"heads.search.halving): {len(stop)} of {len(plan.runs)} runs may be stopped early "
                     f"({'marked * below' if listed else 'per method: the table below'}); about {expected:.0f} epochs "
                     f"in all instead of {len(plan.runs) * spec.epochs} (the ETA counts them; survivors continue "
                     "from their rung)")
        lines += [f"            * {r.label} seed={r.seed}" for r in stop] if listed else []
    return lines


def target_lines(plan: Plan) -> list[str]:
    """What [heads] target_effect costs: the seeds it needs (from a finished pilot's spread when the sweep directory
    holds one) and, with max_seeds, the extra seeds' runs and time (each seed costs what the plan's first seed does,
    study.plan.estimates)."""
    from heads.results.stats import MAX_SEEDS_SEARCHED

    spec = plan.spec
    per_seed = [r for r in plan.runs if r.seed == spec.seeds[0]]
    each = sum(r.seconds for r in per_seed) if plan.calibration else None

    def cost(extra: int) -> str:
        return (f"{extra} more seed{'s' if extra != 1 else ''} = {extra * len(per_seed)} runs, about "
                f"{fmt_seconds(extra * each if each is not None else None)}")

    target = f"{spec.target_effect:g} point{'' if spec.target_effect == 1 else 's'}"
    decision = pilot_decision(plan)
    known = ""
    if decision is not None and decision.get("largest"):
        big, needed = decision["largest"], decision["needed"]
        known = (f"; the finished sweep's largest spread (s_d {100 * big['s_d']:.2f} points, {big['method']} vs "
                 f"{big['baseline']} at K = {big['k']}) needs {needed or f'more than {MAX_SEEDS_SEARCHED:,}'} seeds")
    if spec.max_seeds is None:
        return [f"            target: {target} (target_effect); the report says how many seeds detect it{known}; "
                "set [heads] max_seeds to grow the seeds toward it"]
    n = len(spec.seeds)
    grow = decision["grow_to"] - n if decision is not None and decision.get("largest") else spec.max_seeds - n
    return [f"            target: {target} (target_effect), seeds grown from the {n} of the spec (the pilot) up to "
            f"max_seeds {spec.max_seeds} by the spread only (study.plan.growth.GROWTH_RULE){known}: "
            + (cost(grow) if grow > 0 else "no seed to add") + (f" (at most {cost(spec.max_seeds - n)})"
                                                                if decision is None and grow > 0 else "")]


def pilot_decision(plan: Plan) -> dict | None:
    """The growth decision on the sweep's files when the pilot's selection is there (study.plan.growth), else None."""
    from study.plan.growth import growth_decision

    if not (plan.spec.out / "sweep" / "selection.json").is_file():
        return None
    try:
        return growth_decision(plan)
    except (OSError, KeyError, ValueError):  # a selection of other runs (its files gone): nothing to read
        return None


LISTED_STOPPABLE = 12  # --plan names each run halving may stop up to this many; beyond, counts per method


def runs_table(plan: Plan) -> list[str]:
    spec = plan.spec
    ks = spec.labels_per_class
    halving = spec.search == "halving"
    head = ["runs per method and K (settings x seeds):", "  " + f"{'method':10s}" + "".join(f"{'K=' + k_text(k) if k is not None else 'all':>8s}" for k in ks)
            + f"{'total':>8s}" + (f"{'may stop':>10s}" if halving else "") + f"{'est. time':>16s}"]
    for aux in spec.methods:
        counts = [sum(r.aux == aux and r.k == k for r in plan.runs) for k in ks]
        stop = f"{sum(r.stoppable for r in plan.runs if r.aux == aux):10d}" if halving else ""
        secs = sum(r.seconds * (1 - r.done) for r in plan.runs if r.aux == aux) if plan.calibration else None
        head.append("  " + f"{aux:10s}" + "".join(f"{c:8d}" for c in counts) + f"{sum(counts):8d}{stop}{fmt_seconds(secs):>16s}")
    return head


def disk_lines(plan: Plan) -> list[str]:
    lines = []
    for where, kinds in disk_needs(plan).items():
        need, free = sum(kinds.values()), shutil.disk_usage(where).free
        verdict = "ok" if need <= free else f"SHORT by {fmt_bytes(need - free)}"
        lines.append(f"disk on {where}: needs {fmt_bytes(need)} ({describe_kinds(kinds) or 'nothing new'}; run "
                     f"directories at their peak, before unselected weights are pruned), {fmt_bytes(free)} free: {verdict}")
    return lines


def view_text(spec: StudySpec, kind: str) -> str:
    """"original", "jigsaw x 4", or "patches x 4 (9 crops of 64 px, ~0.73 of a 224-px input per view)"."""
    if kind == "original":
        return kind
    if kind != "patches":
        return f"{kind} x {spec.num_views}"
    patch = spec.patch_geometry()[1]
    cost = input_equivalents(0, spec.patch_grid ** 2, patch, spec.image_size)
    return (f"patches x {spec.num_views} ({spec.patch_grid ** 2} crops of {patch} px, ~{cost:.2f} of a "
            f"{spec.image_size}-px input per view)")


def range_text(bounds: tuple[float, float] | None) -> str:
    """' (50 s - 1 min 10 s)': an estimate's range, when there is one."""
    if bounds is None or bounds[1] <= 0:
        return ""
    return f" ({fmt_seconds(bounds[0])} - {fmt_seconds(bounds[1])})"


MEASURED = ("measured here, warm-up excluded, the median of repeats (their spread gives the range): each method's "
            "epoch at the study's shapes, three batch sizes and two row counts, a fit's own set-up, prediction per row "
            "and per validation pass, a run's own work (standardisation, validation metrics, model.pt, figure, files), "
            "scoring a selected run, reading the caches, the report's bootstrap and one row's figures (the dataset's "
            "class names), a fresh process's first run; scaled: those figures to each run's rows, steps and epochs, and "
            "extraction from the backbone's inputs/s")


def calibration_line(cal: Calibration) -> str:
    parts = [f"calibration ({cal.seconds:.1f} s; {MEASURED}):"]
    if cal.backbone_inputs_per_s:
        stand_in = cal.backbone.get("stand_in")
        timed_on = (f" timed on {stand_in} (the same ResNet-50 v2 architecture and FLOPs, random weights): the "
                    "spec's TF-Hub model is not cached here and cannot be fetched offline;") if stand_in else ""
        parts.append(f"backbone {cal.backbone_inputs_per_s:.1f} inputs/s ({cal.backbone.get('precision')}, "
                     f"start-up {cal.backbone_startup_s:.1f} s, finish {cal.backbone_finish_s or 0.0:.1f} s);"
                     f"{timed_on}")
    parts.append("heads per step " + ", ".join(f"{k} {1000 * c.step_s:.1f} ms + {1e6 * c.row_s:.1f} us/row"
                                              for k, c in cal.methods.items()))
    return " ".join(parts)


def load_lines(plan: Plan) -> list[str]:
    """What --plan says about its calibration's load (study.plan.load): reused or measured again and how old, the load
    it saw, and under load what a quiet machine would take against what this load implies; each method whose
    per-step fit held a bound."""
    cal, lines = plan.calibration, []
    if cal is None:
        return lines
    if cal.reuse_note:
        lines.append(f"calibration: {cal.reuse_note}")
    record = cal.load_record
    if record is None:
        lines.append("load: not recorded with this calibration (one saved by an older version)")
    else:
        lines.append(f"load: the calibration saw {record.describe()}")
        if cal.slowdown > 1:
            quiet, loaded = sweep_quiet(plan), stage_seconds(plan)["sweep"]
            worst = sweep_range(plan)
            lines.append(f"LOADED: another process took the cores while calibrating: the sweep on a quiet machine "
                         f"would take {fmt_seconds(quiet)}; this load implies {fmt_seconds(loaded)} "
                         f"({cal.slowdown:.1f}x: the cores' fair share with {record.others if record.others is not None else record.load_avg:.1f} "
                         f"other runnable tasks), up to {fmt_seconds(worst[1] if worst else None)} at the share the "
                         f"calibration's own fits got; the ETAs above assume the load stays")
        elif record.loaded:
            lines.append("the machine was busy, but the calibration's measurements received their CPU time: its "
                         "figures stand")
    lines += [f"fit {k}: {c.fit_note}" for k, c in cal.methods.items() if c.fit_note]
    return lines


def _available_memory() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return float("nan")
