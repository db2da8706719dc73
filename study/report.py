"""The study's report, built from files other commands also read: report.md and a self-contained report.html.

Inputs: sweep/sweep.json, sweep/selection.json (validation only), each selected run's predictions.csv,
config.json, history.csv and confusion.json, the caches' attributes and labels, the dataset root's README
(a synthetic sample says so), study.json (time per stage). Every number can be recomputed: test metrics from
predictions.csv (heads.metrics.metrics_from_predictions_csv) or from model.pt (`evaluate-heads RUN...`),
intervals from the same predictions with heads.stats (the spec's interval, the one sweep/summary.md uses too),
counts of rows from the runs' config.json.

`collect` reads a study's results once (`Results`: entries, paired effects, bands, counts, flags); the blocks
come from it in the order a reader needs them: the answer (study.answer), the label-efficiency figure, the
tables per K, per-class changes, the protocol and setup, the files and commands (study.report_files) and the
per-run figures (study.report_figures). They are rendered twice (study.render), so both files say the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .facts import (cache_attrs, cache_labels, extraction_precision, fmt_time, machine, runs_resolved,
                    synthetic_note, versions)
from .render import TIMING, Block, to_html, to_markdown, without_timing, write_blocks  # noqa: F401 (the report's API)


# --- data from files ------------------------------------------------------------------------------------
def read_correct(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image_id, label, correct) of a selected run's predictions.csv."""
    import csv

    with open(run / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = np.array([int(r["image_id"]) for r in rows])
    label = np.array([int(r["label"]) for r in rows])
    return ids, label, np.array([int(r["pred"]) == int(r["label"]) for r in rows], dtype=float)


@dataclass
class Entry:
    """One method at one K, at its selected setting: per-seed correctness on the same test images."""

    aux: str
    k: str
    setting: str
    seeds: list[int]
    runs: list[Path]
    correct: np.ndarray  # (seeds, images)
    label: np.ndarray
    val_mean: float
    val_std: float
    candidates: int
    health: str = "ok"  # heads.health.verdict of its runs: "ok" when every run learned
    named: list[str] = field(default_factory=list)  # the options its run names carry, flag=value (sweep.json)

    @property
    def learned(self) -> bool:
        return self.health == "ok"

    @property
    def top1(self) -> tuple[float, float]:
        """(mean, std) over seeds of test top-1, fractions (heads.stats.mean_std, as summary.md)."""
        from heads.stats import mean_std

        return mean_std(self.correct.mean(1))


def load_entries(sweep_dir: Path) -> list[Entry]:
    from heads import artifacts
    from heads.health import verdict

    selection = artifacts.read_json(sweep_dir / "selection.json")
    settings = artifacts.read_json(sweep_dir / "sweep.json").get("settings") or {}
    entries = []
    for e in selection["selected"]:
        order = np.argsort(e["seeds"])
        seeds = [e["seeds"][i] for i in order]
        runs = [sweep_dir / e["runs"][i] for i in order]
        data = [read_correct(r) for r in runs]
        for ids, _label, _c in data[1:]:
            if not np.array_equal(ids, data[0][0]):
                raise ValueError(f"{runs[0]}: seeds scored on different test rows")
        entries.append(Entry(e["aux"], str(e["labels_per_class"]), e["setting"], seeds, runs,
                             np.stack([d[2] for d in data]), data[0][1], e["val_top1_mean"], e["val_top1_std"],
                             e["candidates"], verdict([e["health"][i] for i in order] if e.get("health") else []),
                             list((settings.get(e["setting"]) or {}).get("named", []))))
    return entries


def k_order(k: str) -> tuple[int, int]:
    return (1, 0) if k == "all" else (0, int(k))


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def diff_text(iv: Any) -> str:
    """'+5.00 [+0.00, +11.25]' in points; an interval that cannot be computed says so."""
    if iv is None:
        return "–"
    if not iv.computable:
        return f"{100 * iv.mean:+.2f} (interval cannot be computed: t over {iv.n} seed{'s' if iv.n != 1 else ''})"
    return f"{100 * iv.mean:+.2f} [{100 * iv.low:+.2f}, {100 * iv.high:+.2f}]"


@dataclass
class Effect:
    """top1(a) - top1(b) at one K over the seeds both have (same seed: same split, labelled rows, initialisation):
    its interval, or why none is read as an effect."""

    a: Entry
    b: Entry
    interval: Any  # heads.stats.Interval, or None with `note`
    note: str = ""  # "not an effect: dcl did not learn", "no seed in common"

    @property
    def shown(self) -> bool:
        """Its 95% interval excludes 0."""
        return self.interval is not None and self.interval.excludes_zero

    def text(self) -> str:
        return self.note or diff_text(self.interval)


def paired(a: Entry, b: Entry, method: str) -> Any:
    """Interval of top1(a) - top1(b) over the seeds both have (heads.stats.paired_interval, as summary.md)."""
    from heads.stats import paired_interval

    common = [s for s in a.seeds if s in b.seeds]
    if not common:
        return None
    ia, ib = [a.seeds.index(s) for s in common], [b.seeds.index(s) for s in common]
    return paired_interval(a.correct[ia], b.correct[ib], method=method)


def effect_of(a: Entry, b: Entry, method: str) -> Effect:
    """a - b; no interval when either did not learn: never an effect."""
    sick = [e.aux for e in (a, b) if not e.learned]
    if sick:
        return Effect(a, b, None, f"not an effect: {' and '.join(sick)} did not learn")
    iv = paired(a, b, method)
    return Effect(a, b, iv, "" if iv is not None else "no seed in common")


def effect_text(a: Entry, b: Entry, method: str) -> tuple[str, Any]:
    """(the cell, the interval or None) of a - b."""
    e = effect_of(a, b, method)
    return e.text(), e.interval


def own_baseline(aux: str, present: list[str] | set[str]) -> str | None:
    """The same-network baseline (pirl: none, dcl: dcl-none) when the study has it."""
    from heads.options import BASELINE_OF

    base = BASELINE_OF.get(aux)
    return base if base in present else None


def named_baseline(aux: str, present: list[str] | set[str]) -> str | None:
    """What the answer compares a method with: its same-network baseline, else the linear probe (none and dcl-none
    against linear), None for the linear probe itself (the reference)."""
    own = own_baseline(aux, present)
    if own is not None:
        return own
    return "linear" if aux != "linear" and "linear" in present else None


def comparisons(entries: list[Entry], k: str) -> dict[str, tuple[Entry | None, Entry | None]]:
    """method -> (its own same-network baseline, the linear probe) at K."""
    at = {e.aux: e for e in entries if e.k == k}
    return {a: (at.get(own_baseline(a, at) or ""), at.get("linear") if a != "linear" else None) for a in at}


# --- rows actually used --------------------------------------------------------------------------------------
@dataclass
class Counts:
    """Rows per class one K's selected runs used, from their config.json (over classes, seeds and methods)."""

    labelled: tuple[int, int] | None  # (min, max) per class; None when config.json cannot tell per class
    labelled_mean: float  # labelled rows / classes
    val: tuple[int, int] | None
    val_mean: float
    labels_total: float  # labelled + validation rows of one run (mean over runs)
    short: dict[str, int]  # classes with fewer than K rows: name -> rows kept (least over runs)
    empty: int  # classes with no labelled row in some run

    def labelled_text(self) -> str:
        return span_text(self.labelled, self.labelled_mean)

    def val_text(self) -> str:
        return span_text(self.val, self.val_mean)


def span_text(span: tuple[int, int] | None, mean: float) -> str:
    """'7', or '27–30 (29.1 on average)', or '≈29.1' when only the mean is known."""
    if span is None:
        return f"≈{mean:.3g}"
    low, high = span
    return f"{low}" if low == high else f"{low}–{high} ({mean:.3g} on average)"


def per_class(ids: list[int], labels: dict[int, int], classes: int) -> np.ndarray:
    return np.bincount([labels[i] for i in ids], minlength=classes)[:classes]


def run_counts(config: dict[str, Any], labels: dict[int, int], classes: int) -> tuple[np.ndarray | None, np.ndarray]:
    """(labelled rows per class or None, validation rows per class) of one run's config.json."""
    val = per_class(config.get("val_image_ids") or [], labels, classes)
    ids = (config.get("labels") or {}).get("labelled_image_ids")
    if isinstance(ids, list):
        return per_class(ids, labels, classes), val
    if config.get("cross_validation"):  # every training row, less carved rows config.json does not list
        return None, val
    return np.bincount(list(labels.values()), minlength=classes)[:classes] - val, val


def counts_at(entries: list[Entry], labels: dict[int, int], classes: int, class_names: list[str]) -> Counts:
    from heads import artifacts

    lab_rows, val_rows, totals, lab_means, val_means, short = [], [], [], [], [], {}
    for e in entries:
        for run in e.runs:
            config = artifacts.read_json(run / "config.json")
            lab, val = run_counts(config, labels, classes)
            rows = config.get("rows") or {}
            lab_rows.append(lab)
            val_rows.append(val)
            lab_means.append(rows.get("labelled", 0) / max(classes, 1))
            val_means.append(rows.get("val", 0) / max(classes, 1))
            totals.append(rows.get("labelled", 0) + rows.get("val", 0))
            for name, kept in ((config.get("labels") or {}).get("classes_with_fewer_than_k_rows") or {}).items():
                short[name] = min(short.get(name, kept), kept)
    known = all(r is not None for r in lab_rows) and lab_rows
    stacked = np.stack(lab_rows) if known else None
    vals = np.stack(val_rows) if val_rows else np.zeros((1, classes), dtype=int)
    return Counts((int(stacked.min()), int(stacked.max())) if known else None, float(np.mean(lab_means or [0])),
                  (int(vals.min()), int(vals.max())), float(np.mean(val_means or [0])), float(np.mean(totals or [0])),
                  short, int((stacked == 0).any(0).sum()) if known else 0)


# --- everything the blocks read ----------------------------------------------------------------------------
@dataclass
class Results:
    """A study's results, read once: the selected entries, paired effects, accuracy bands, counts and flags."""

    spec: Any
    entries: list[Entry]
    ks: list[str]
    effects: dict[tuple[str, str, str], Effect]  # (method, against, K)
    bands: dict[tuple[str, str], Any]  # (method, K) -> heads.stats.Interval of its mean test top-1
    counts: dict[str, Counts]
    class_names: list[str]
    weights: str  # the training cache's backbone_weights
    synthetic: str  # the dataset root's README line when make-sample-dataset made it, else ''

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def untrained(self) -> bool:
        return "untrained" in self.weights

    @property
    def test_images(self) -> int:
        return int(self.entries[0].correct.shape[1]) if self.entries else 0

    @property
    def seeds(self) -> int:
        return max((len(e.seeds) for e in self.entries), default=0)

    @property
    def methods(self) -> list[str]:
        return [a for a in self.spec.methods if any(e.aux == a for e in self.entries)]

    def entry(self, aux: str, k: str) -> Entry | None:
        return next((e for e in self.entries if e.aux == aux and e.k == k), None)

    def baseline(self, aux: str) -> str | None:
        """The method's named baseline in this study (the answer's Δ)."""
        return named_baseline(aux, self.methods)

    def named(self, aux: str, k: str) -> Effect | None:
        base = self.baseline(aux)
        return self.effects.get((aux, base, k)) if base else None


def collect(spec: Any) -> Results:
    """Read a study's results from its sweep directory and caches (every interval of the spec's kind)."""
    from heads import artifacts
    from heads.stats import mean_interval

    sweep_dir = spec.out / "sweep"
    info = artifacts.read_json(sweep_dir / "sweep.json")
    entries = sorted(load_entries(sweep_dir), key=lambda e: (k_order(e.k), spec.methods.index(e.aux)))
    train_path = info["identity"]["train_cache"]["path"]
    train = cache_attrs(train_path)
    ks = sorted({e.k for e in entries}, key=k_order)
    effects: dict[tuple[str, str, str], Effect] = {}
    for k in ks:
        for aux, (own, linear) in comparisons(entries, k).items():
            for base in (own, linear):
                if base is not None:
                    effects[aux, base.aux, k] = effect_of(next(e for e in entries if e.aux == aux and e.k == k),
                                                          base, spec.interval)
    bands = {(e.aux, e.k): mean_interval(e.correct, spec.interval) for e in entries}
    labels = cache_labels(train_path)
    names = list(train["class_names"])
    counts = {k: counts_at([e for e in entries if e.k == k], labels, len(names), names) for k in ks}
    return Results(spec, entries, ks, effects, bands, counts, names, str(train.get("backbone_weights", "")),
                   synthetic_note(spec.data_root))


# --- the blocks -------------------------------------------------------------------------------------------
def build_report(plan: Any, stage_seconds: dict[str, float]) -> list[Block]:
    """Every block of the report, from the study's files (and commands.sh, per_class.csv and the figures
    beside it)."""
    from heads import artifacts

    from .answer import answer_blocks, banner_blocks, glossary_blocks
    from .report_figures import label_figure_blocks, run_figure_blocks
    from .report_files import class_blocks, files_blocks

    spec = plan.spec
    r = collect(spec)
    refresh_summary(r)
    info = artifacts.read_json(spec.out / "sweep" / "sweep.json")
    blocks = [Block("h1", f"Study `{spec.name}`: does PIRL or DCL help this frozen backbone, at how many labels?")]
    blocks += banner_blocks(r, spec.backbone)
    blocks += answer_blocks(r)
    blocks += glossary_blocks(r)
    blocks += label_figure_blocks(r)
    blocks += results_blocks(r)
    blocks += class_blocks(r)
    blocks += protocol_blocks(plan, r)
    blocks += setup_blocks(plan, r, stage_seconds)
    blocks += files_blocks(r, info)
    blocks += run_figure_blocks(r)
    return blocks


def refresh_summary(r: Results) -> None:
    """sweep/summary.* again when their intervals are not of the spec's kind (the sweep engine summarises with
    sweep.json's kind, else the hierarchical bootstrap), so the two files never disagree; and sweep/labels.png
    with the study's flags in its title (untrained backbone, synthetic data, n seeds)."""
    import csv

    from heads import artifacts
    from heads.plots import flags_text, plot_labels
    from heads.summary import write_summary

    sweep_dir = r.spec.out / "sweep"
    rows: list[dict[str, Any]] = []
    if (sweep_dir / "summary.csv").is_file():
        with open(sweep_dir / "summary.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    if not rows or {row.get("interval") for row in rows} != {r.spec.interval}:
        rows, _markdown = write_summary(sweep_dir, r.spec.interval)
    if len({str(row["labels_per_class"]) for row in rows}) > 1:
        info = artifacts.read_json(sweep_dir / "sweep.json")
        plot_labels(sweep_dir / "labels.png", rows, info["auxes"], sweep_dir,
                    flags=flags_text(r.untrained, bool(r.synthetic), r.seeds))


def setting_text(e: Any, spec: Any = None) -> str:
    """The selected setting: the options its run name carries (those off heads' defaults, as sweep.json recorded
    them), plus the value of each option the spec's grid varies for the method that the name leaves out (it was
    at its default)."""
    from heads.options import CONDITIONS, OPTIONS_BY_NAME

    parts = [p for p in e.named if p.split("=", 1)[0] != "labels-per-class"]
    named = {p.split("=", 1)[0] for p in parts}
    swept = [k for k, v in (spec.grid.get(e.aux, {}) if spec is not None else {}).items()
             if len(v) > 1 and k not in CONDITIONS and OPTIONS_BY_NAME[k].flag[2:] not in named]
    parts += [f"{OPTIONS_BY_NAME[k].flag[2:]}={OPTIONS_BY_NAME[k].default}" for k in swept]
    return ", ".join(parts) or "defaults"


def k_title(k: str, counts: Counts | None = None) -> str:
    """'K = 5', 'K = all (7)': K with the labelled rows per class the runs used when it is 'all'."""
    if k != "all":
        return f"K = {k}"
    return f"K = all ({counts.labelled_text()})" if counts is not None else "K = all"


def results_blocks(r: Results) -> list[Block]:
    """At each K: each method's selected setting, test top-1 and both comparisons (same-network, linear probe)."""
    spec = r.spec
    cv = spec.selection == "cv"
    blocks = [Block("h2", f"Results by K: each method at its {'cross-validation' if cv else 'validation'}-selected "
                          "setting, against its same-network baseline and the linear probe")]
    for k in r.ks:
        rows = [["method", f"selected setting ({'cross-validated' if cv else 'validation'} top-1, settings compared)",
                 "test top-1 % (mean ± std, n)", "Δ vs same-network baseline (points, 95%)",
                 "Δ vs linear probe (points, 95%)"]]
        for e in (e for e in r.entries if e.k == k):
            own, linear = comparisons(r.entries, k)[e.aux]
            mean, std = e.top1
            method = e.aux if e.learned else f"{e.aux} (did not learn: {e.health})"
            rows.append([method, f"{setting_text(e, spec)} ({pct(e.val_mean)} ± {pct(e.val_std)}, best of {e.candidates})",
                         f"{pct(mean)} ± {pct(std)} (n={len(e.seeds)})",
                         f"vs {own.aux}: {r.effects[e.aux, own.aux, k].text()}" if own else "–",
                         r.effects[e.aux, "linear", k].text() if linear else "–"])
        title = (f"K = {k} labelled images per class" if k != "all" else
                 f"K = all training labels ({r.counts[k].labelled_text()} per class)")
        blocks += [Block("h3", title), Block("table", rows)]
    return blocks


def setup_blocks(plan: Any, r: Results, stage_seconds: dict[str, float]) -> list[Block]:
    spec = plan.spec
    train = cache_attrs(str(spec.train_cache))
    views = ", ".join(k if k == "original" else f"{k} x {spec.num_views}" for k in spec.kinds)
    grids = f"jigsaw grid {spec.jigsaw_grid}, RCM grid {spec.rcm_grid} (k = {spec.rcm_k:g})"
    if "patches" in spec.kinds:
        _cell, patch, jitter = spec.patch_geometry()
        grids += f", patches {spec.patch_grid} x {spec.patch_grid} crops of {patch} px (jitter {jitter} px)"
    maps = f"spatial maps {plan.spatial_hw[0]} x {plan.spatial_hw[1]}" if plan.spatial_hw else "no spatial maps"
    times = ", ".join(f"{k} {fmt_time(v)}" for k, v in stage_seconds.items())
    data = f"**synthetic sample** (its README: \"{r.synthetic}\")" if r.synthetic else f"`{spec.dataset}`"
    items = [
        f"Dataset: `{spec.data_root}`, {data}, {plan.classes} classes; official train split "
        f"{plan.splits['train'].images} images, test split {plan.splits['test'].images} images (the rows each K "
        "used: Protocol).",
        f"Backbone: `{spec.backbone}`, weights **{train.get('backbone_weights')}**; endpoint "
        f"{train.get('backbone_endpoint', '?')}; precision {extraction_precision(train, spec)}; image size "
        f"{spec.image_size} px.",
        f"Views: {views}; {grids}; {maps}. Caches: `{spec.train_cache}` ({train.get('config_hash')}), "
        f"`{spec.test_cache}`.",
        f"Heads: {', '.join(spec.methods)}; {spec.epochs} epochs, batch {spec.batch_size}, on {runs_resolved(plan, 'device')} "
        f"in {runs_resolved(plan, 'precision')}; seeds {', '.join(map(str, spec.seeds))}.",
        f"Software: {versions()}.",
        f"Machine: {machine()}.",
        f"Time per stage (summed over resumes): {times}. {TIMING}",
    ]
    return [Block("h2", "Setup"), Block("list", items)]


def describe_validation(spec: Any) -> str:
    if spec.val_per_class:
        return f"{spec.val_per_class} per class"
    return f"{spec.val_fraction:g} of each class"


def protocol_blocks(plan: Any, r: Results) -> list[Block]:
    from heads.stats import interval_description

    spec = plan.spec
    show = class_display(spec.dataset)
    cv = spec.selection == "cv"
    rows = [["K (labels per class)", "labelled training rows per class", "validation rows per class",
             "labels per class in all", "labels in all", "classes with fewer than K rows"]]
    for k in r.ks:
        c = r.counts[k]
        short = ", ".join(f"{show(name)} ({n})" for name, n in sorted(c.short.items())) or "none"
        rows.append([k, c.labelled_text(), c.val_text(), f"{c.labels_total / max(r.classes, 1):.3g}",
                     f"{round(c.labels_total):,}", short])
    return [Block("h2", "Protocol"), Block("list", [
        selection_item(spec), *search_items(spec),
        "**The test split is scored once**, for the selected setting's runs only; no other run ever saw it.",
        "Each K labels K training images per class (a nested seeded draw: the images labelled at K = 2 are among "
        "those at K = 5); PIRL's and DCL's label-free losses also see the unlabelled rest. "
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


def grid_rows(spec: Any) -> list[list[str]]:
    """One row per method: the options its settings vary (each value; how many settings in all) and the options
    fixed for every run (the conditions, K, aside), as the sweep ran them (spec.grid)."""
    from heads.options import CONDITIONS, OPTIONS_BY_NAME

    def name(option: str) -> str:
        return f"`{OPTIONS_BY_NAME[option].flag.lstrip('-')}`"

    rows = [["method", "settings compared on validation", "fixed for every run"]]
    for method in spec.methods:
        options = {k: v for k, v in spec.grid.get(method, {}).items() if k not in CONDITIONS}
        swept = {k: v for k, v in options.items() if len(v) > 1}
        count = math.prod(len(v) for v in swept.values())
        varied = "; ".join(f"{name(k)} {', '.join(map(str, v))}" for k, v in swept.items())
        rows.append([method, f"{varied} ({count} settings)" if swept else "one setting",
                     ", ".join(f"{name(k)} {v[0]}" for k, v in options.items() if len(v) == 1)])
    return rows


def selection_item(spec: Any) -> str:
    """The protocol's selection rule: on validation rows, or by cross-validation within the K labelled rows."""
    from heads.cv import CV_SELECTION_RULE
    from heads.selection import SETTING_SELECTION_RULE

    if spec.selection == "cv":
        folds = spec.cv_folds or "min(K, 5)"
        return (f"**Selection by cross-validation within the K labelled rows** ({folds} folds; heads.cv): "
                f"{CV_SELECTION_RULE}. A point at K used K labels per class and no more.")
    return (f"**Selection on validation only**: {SETTING_SELECTION_RULE}. Validation rows: {describe_validation(spec)}, drawn "
            "per seed from the training split; each run keeps its epoch with the best validation top-1 (ties: lower "
            "validation loss).")


def search_items(spec: Any) -> list[str]:
    """The protocol's line on successive halving ([heads] search = "halving"); none for the full grid."""
    if getattr(spec, "search", "grid") != "halving":
        return []
    return [f"**Search: successive halving** (eta {spec.halving_eta}, {spec.halving_rungs} rungs; heads.search): "
            "within each method and K, settings were ranked by mean validation top-1 over seeds after a shorter "
            "budget and the worse ones stopped; selection took only among the validation records of the settings "
            "that trained the full budget (stopped runs: `stopped_at_epoch` in sweep/runs.csv, never eligible), "
            "and the test split was read after selection only."]


def class_display(dataset: str) -> Any:
    """How a class name is shown: CUB's and NABirds' '017.Cardinal' as 'Cardinal'; other datasets' as stored."""
    from pipeline.datasets.cub import display_name

    return display_name if dataset in ("cub", "nabirds") else (lambda name: name)


def write_report(plan: Any, stage_seconds: dict[str, float]) -> tuple[Path, Path]:
    """report.md and report.html in the study directory (commands.sh, per_class.csv and figures/ beside them)."""
    return write_blocks(build_report(plan, stage_seconds), plan.spec.out, f"Study {plan.spec.name}")
