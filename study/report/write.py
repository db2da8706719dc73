"""The study's report, built from files other commands also read: report.md and a self-contained report.html.

Inputs: sweep/sweep.json, sweep/selection.json (validation only), each selected run's predictions.csv,
config.json, history.csv and confusion.json, the caches' attributes and labels, the dataset root's README
(a synthetic sample says so), study.json (time per stage). Every number can be recomputed: test metrics from
predictions.csv (heads.training.metrics.metrics_from_predictions_csv) or from model.pt (`evaluate-heads RUN...`),
intervals from the same predictions with heads.results.stats (the spec's interval, the one sweep/summary.md uses too),
counts of rows from the runs' config.json.

`study.report.results.collect` reads a study's results once (`Results`: entries, paired effects, bands, counts, flags); the blocks
come from it in the order a reader needs them: the answer (study.report.answer), the label-efficiency figure, the
tables per K, per-class changes, the protocol and setup, the files and commands (study.report.files) and the
per-run figures (study.report.figures). They are rendered twice (study.report.render), so both files say the same.
"""

from __future__ import annotations

from heads.cells import K_NAME, Cell, K, k_text

import math
from pathlib import Path
from typing import Any

from study.report.facts import cache_attrs, extraction_precision, fmt_time, input_check, machine, runs_resolved, versions
from study.report.render import TIMING, Block, write_blocks
from study.run.timing import stage_loads, time_text


from study.report.results import Results, class_display, collect, comparisons, pct, setting_text, show

# --- the blocks -------------------------------------------------------------------------------------------
def build_report(plan: Any, stage_seconds: dict[str, float], planned: dict[str, float] | None = None,
                 planned_by: dict[str, str] | None = None) -> list[Block]:
    """Every block of the report, from the study's files (and commands.sh, per_class.csv and the figures
    beside it)."""
    from heads.training import artifacts

    from study.report.answer import answer_blocks, banner_blocks, glossary_blocks, power_blocks
    from study.report.figures import label_figure_blocks, run_figure_blocks
    from study.report.files import class_blocks, files_blocks

    spec = plan.spec
    r = collect(spec)
    refresh_summary(r)
    info = artifacts.read_json(spec.out / "sweep" / "sweep.json")
    blocks = [Block("h1", f"Study `{spec.name}`: does PIRL or DCL help this frozen backbone, at how many labels?")]
    blocks += banner_blocks(r, spec.backbone)
    blocks.append(Block("toc", None))
    blocks += answer_blocks(r)
    blocks += power_blocks(r)
    blocks += glossary_blocks(r)
    blocks += label_figure_blocks(r)
    blocks += results_blocks(r)
    blocks += class_blocks(r)
    blocks += protocol_blocks(plan, r)
    blocks += setup_blocks(plan, r, stage_seconds, planned or {}, planned_by or {})
    blocks += files_blocks(r, info)
    blocks += run_figure_blocks(r)
    return blocks


def refresh_summary(r: Results) -> None:
    """sweep/summary.* again when their intervals are not of the spec's kind (the sweep engine summarises with
    sweep.json's kind, else the hierarchical bootstrap) or their power not against the spec's target_effect, so
    the two files never disagree; and sweep/labels.png
    with the study's flags in its title (untrained backbone, synthetic data, n seeds)."""
    import csv

    from heads.training import artifacts
    from heads.results.plots import flags_text, plot_labels
    from heads.results.summary import write_summary

    sweep_dir = r.spec.out / "sweep"
    rows: list[dict[str, Any]] = []
    if (sweep_dir / "summary.csv").is_file():
        with open(sweep_dir / "summary.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    stale = (not rows or {row.get("interval") for row in rows} != {r.spec.interval}
             or {row.get("target_effect") for row in rows} != {f"{r.spec.target_effect:.6f}"})
    if stale:
        rows, _markdown = write_summary(sweep_dir, r.spec.interval, r.spec.target_effect)
    if len({Cell.of_row(row).k for row in rows}) > 1:
        info = artifacts.read_json(sweep_dir / "sweep.json")
        plot_labels(sweep_dir / "labels.png", rows, info["auxes"], sweep_dir,
                    flags=flags_text(r.untrained, bool(r.synthetic), r.seeds))


def results_blocks(r: Results) -> list[Block]:
    """At each K: each method's selected setting (marked where it is at the edge of its grid), test top-1 and both
    comparisons (same-network, linear probe); then every setting at the edge of its grid (heads.results.edges)."""
    from heads.results.edges import grid_edges

    spec = r.spec
    cv = spec.selection == "cv"
    edges = grid_edges(spec.out / "sweep")
    edged = {e.cell for e in edges}
    blocks = [Block("h2", f"Results by K: each method at its {'cross-validation' if cv else 'validation'}-selected "
                          "setting, against its same-network baseline and the linear probe")]
    for k in r.ks:
        rows = [["method", f"selected setting ({'cross-validated' if cv else 'validation'} top-1, settings compared)",
                 "test top-1 % (mean ± std, n)", "Δ vs same-network baseline (points, 95%)",
                 "Δ vs linear probe (points, 95%)"]]
        for e in (e for e in r.entries if e.k == k):
            own, linear = comparisons(r.entries, k)[e.aux]
            mean, std = e.top1
            method = show(e.aux) if e.learned else f"{show(e.aux)} (did not learn: {e.health})"
            edge = "; at the edge of its grid" if e.cell in edged else ""
            rows.append([method, f"{setting_text(e, spec)} ({pct(e.val_mean)} ± {pct(e.val_std)}, best of "
                                 f"{e.candidates}{edge})",
                         f"{pct(mean)} ± {pct(std)} (n={len(e.seeds)})",
                         f"vs {show(own.aux)}: {r.effects[e.cell, own.aux].text()}" if own else "–",
                         r.effects[e.cell, "linear"].text() if linear else "–"])
        title = (f"K = {k_text(k)} labelled images per class" if k is not None else
                 f"K = all training labels: {r.counts[k].labelled_text()} per class")
        blocks += [Block("h3", title), Block("table", rows)]
    if edges:
        blocks += [Block("p", "**Selected at the edge of the grid** (heads.results.edges: the best value may lie beyond the "
                              "values tried; with 2 values every choice is an edge):"),
                   Block("list", [f"{show(e.cell.method)} at K = {e.cell.k_text}: {e.text()}" for e in edges])]
    else:
        blocks.append(Block("p", "No selected setting is at the edge of a numeric grid of 2 or more values "
                                 "(heads.results.edges)."))
    return blocks


def stage_times(took: dict[str, float], planned: dict[str, float], planned_by: dict[str, str]) -> str:
    """'extract 31 s (planned 25 s)': each stage's seconds summed over resumes, beside what the first plan that found
    its work still to do said it would take (study.json's stage_planned; 'quick' when that plan's calibration was
    the quick one a study run makes without a `study --plan` before it)."""
    def said(k: str) -> str:
        quick = " by the quick calibration" if planned_by.get(k) == "quick" else ""
        return f" (planned {fmt_time(planned[k])}{quick})" if planned.get(k) else ""

    return ", ".join(f"{k} {fmt_time(v)}{said(k)}" for k, v in took.items())


def setup_blocks(plan: Any, r: Results, stage_seconds: dict[str, float], planned: dict[str, float],
                 planned_by: dict[str, str]) -> list[Block]:
    spec = plan.spec
    train = cache_attrs(str(spec.train_cache))
    views = ", ".join(k if k == "original" else f"{k} x {spec.num_views}" for k in spec.kinds)
    grids = f"jigsaw grid {spec.jigsaw_grid}, RCM grid {spec.rcm_grid} (k = {spec.rcm_k:g})"
    if "patches" in spec.kinds:
        _cell, patch, jitter = spec.patch_geometry()
        grids += f", patches {spec.patch_grid} x {spec.patch_grid} crops of {patch} px (jitter {jitter} px)"
    maps = f"spatial maps {plan.spatial_hw[0]} x {plan.spatial_hw[1]}" if plan.spatial_hw else "no spatial maps"
    times = time_text(stage_seconds, planned, planned_by, stage_loads(spec.out))  # study.run.timing: as the console
    data = f"**synthetic sample** (its README: \"{r.synthetic}\")" if r.synthetic else f"`{spec.dataset}`"
    items = [
        f"Dataset: `{spec.data_root}`, {data}, {plan.classes} classes; official train split "
        f"{plan.splits['train'].images} images, test split {plan.splits['test'].images} images (the rows each K "
        "used: Protocol).",
        f"Input check: {input_check(train)}",
        f"Backbone: `{spec.backbone}`, weights **{train.get('backbone_weights')}**; endpoint "
        f"{train.get('backbone_endpoint', '?')}; precision {extraction_precision(train, spec)}; image size "
        f"{spec.image_size} px.",
        f"Views: {views}; {grids}; {maps}. Caches: `{spec.train_cache}` ({train.get('config_hash')}), "
        f"`{spec.test_cache}`.",
        f"Heads: {', '.join(spec.methods)}; {spec.epochs} epochs, batch {spec.batch_size}, on {runs_resolved(plan, 'device')} "
        f"in {runs_resolved(plan, 'precision')}; seeds {', '.join(map(str, spec.seeds))}.",
        f"Software: {versions()}.",
        f"Machine: {machine()}.",
        f"Time per stage (summed over resumes; in brackets what the plan said; a quick calibration, made when no "
        f"`study --plan` ran first, is rougher; then taken / planned and the load seen, as the console and study.json "
        f"give them): {times}. {TIMING}",
    ]
    return [Block("h2", "Setup"), Block("list", items)]


def describe_validation(spec: Any) -> str:
    if spec.val_per_class:
        return f"{spec.val_per_class} per class"
    return f"{spec.val_fraction:g} of each class"


def protocol_blocks(plan: Any, r: Results) -> list[Block]:
    from heads.results.stats import interval_description

    spec = plan.spec
    class_name = class_display(spec.dataset)
    cv = spec.selection == "cv"
    rows = [["K (labels per class)", "labelled training rows per class", "validation rows per class",
             "labels per class in all", "labels in all", "classes with fewer than K rows"]]
    for k in r.ks:
        c = r.counts[k]
        short = ", ".join(f"{class_name(name)} ({n})" for name, n in sorted(c.short.items())) or "–"
        rows.append([k_text(k), c.labelled_text(), c.val_text(), f"{c.labels_total / max(r.classes, 1):.3g}",
                     f"{round(c.labels_total):,}", short])
    return [Block("h2", "Protocol"), Block("list", [
        selection_item(spec), *search_items(spec),
        "**The test split is scored once**, for the selected setting's runs only; no other run ever saw it.",
        "Each K labels K training images per class (a nested seeded draw: " + nested_example(r.ks) + "); PIRL's "
        "and DCL's label-free losses also see the unlabelled rest. "
        + ("Selection used these K labels only: the table counts no validation row." if cv else
           "Validation labels are labels too: the table counts them."),
        f"Intervals: 95%, {interval_description(spec.interval)}. Differences are paired: the same seed gives both "
        "methods the same validation split, labelled rows and initialisation. An interval that contains 0 does not "
        "show a difference. `sweep/summary.md` prints the same intervals.",
    ]), Block("p", "**Rows each K used**, per class, as the selected runs' `config.json` records them (over classes, "
                   "seeds and methods; a class short of K keeps what it has):"),
        Block("table", rows),
        Block("p", "**Settings compared** on validation for each method at each K, and the options every run of "
                   "the method shares (the spec's `[grid]` over heads' defaults):"),
        Block("table", grid_rows(spec))]


def nested_example(ks: list[K]) -> str:
    """'the images labelled at K = 1 are among those at K = 5', with the study's own K values."""
    numbers = sorted(k for k in ks if k is not None)
    if len(numbers) >= 2:
        return f"the images labelled at K = {numbers[0]} are among those at K = {numbers[1]}"
    if numbers:
        return f"the images labelled at K = {numbers[0]} are among those a larger K would label"
    return "the images labelled at a smaller K are among those at a larger one"


def grid_rows(spec: Any) -> list[list[str]]:
    """One row per method: the options its settings vary (each value; how many settings in all) and the options
    fixed for every run (K aside), as the sweep ran them (spec.grid)."""
    from heads.options import OPTIONS_BY_NAME

    def name(option: str) -> str:
        return f"`{OPTIONS_BY_NAME[option].flag.lstrip('-')}`"

    rows = [["method", "settings compared on validation", "fixed for every run"]]
    for method in spec.methods:
        options = {k: v for k, v in spec.grid.get(method, {}).items() if k != K_NAME}
        swept = {k: v for k, v in options.items() if len(v) > 1}
        count = math.prod(len(v) for v in swept.values())
        varied = "; ".join(f"{name(k)} {', '.join(map(str, v))}" for k, v in swept.items())
        rows.append([show(method), f"{varied} ({count} settings)" if swept else "one setting",
                     ", ".join(f"{name(k)} {v[0]}" for k, v in options.items() if len(v) == 1)])
    return rows


def selection_item(spec: Any) -> str:
    """The protocol's selection rule: on validation rows, or by cross-validation within the K labelled rows."""
    from heads.results.selection import CV_SELECTION_RULE
    from heads.results.selection import SETTING_SELECTION_RULE

    from heads.results.summary import user_words

    if spec.selection == "cv":
        folds = spec.cv_folds or "min(K, 5)"
        return (f"**Selection by cross-validation within the K labelled rows** ({folds} folds; heads.search.cv): "
                f"{user_words(CV_SELECTION_RULE)}. A point at K used K labels per class and no more.")
    from heads.training.epochs import RULE as EPOCH_RULE

    return (f"**Selection on validation only**: {user_words(SETTING_SELECTION_RULE)}. Validation rows: {describe_validation(spec)}, drawn "
            f"per seed from the training split; each run keeps the epoch of the epoch rule (heads.training.epochs): {EPOCH_RULE}.")


def search_items(spec: Any) -> list[str]:
    """The protocol's line on successive halving ([heads] search = "halving"); none for the full grid."""
    if getattr(spec, "search", "grid") != "halving":
        return []
    return [f"**Search: successive halving** (eta {spec.halving_eta}, {spec.halving_rungs} rungs; heads.search.halving): "
            "within each method and K, settings were ranked by mean validation top-1 over seeds after a shorter "
            "budget and the worse ones stopped; selection took only among the validation records of the settings "
            "that trained the full budget (stopped runs: `stopped_at_epoch` in sweep/runs.csv, never eligible), "
            "and the test split was read after selection only."]


def write_report(plan: Any, stage_seconds: dict[str, float], planned: dict[str, float] | None = None,
                 planned_by: dict[str, str] | None = None) -> tuple[Path, Path]:
    """report.md and report.html in the study directory (commands.sh, per_class.csv and figures/ beside them)."""
    return write_blocks(build_report(plan, stage_seconds, planned, planned_by), plan.spec.out, f"Study {plan.spec.name}")
