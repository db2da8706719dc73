"""The study's report, built from files other commands also read: report.md and a self-contained report.html.

Inputs: sweep/sweep.json, sweep/selection.json (validation only), each selected run's predictions.csv
and config.json, the caches' attributes, study.json (time per stage). Every number can be recomputed:
test metrics from predictions.csv (heads.metrics.metrics_from_predictions_csv) or from model.pt
(`evaluate-heads RUN...`), intervals from the same predictions with heads.stats.

The report is a list of blocks rendered twice (Markdown and HTML), so both say the same thing; figures
are PNG files under figures/ and embedded in the HTML as base64, so it opens offline. Lines that depend
on wall-clock time carry the marker TIMING, so that two runs of one study can be compared without them.
"""

from __future__ import annotations

import base64
import math
import csv
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.files import created_atomically

from .facts import cache_attrs, extraction_precision, fmt_time, machine, runs_resolved, versions

TIMING = "<!-- timing -->"
RESAMPLES = 10_000
TOP_CLASSES = 5


@dataclass
class Block:
    kind: str  # "h1", "h2", "h3", "p", "list", "table", "img", "code"
    content: Any


# --- data from files ------------------------------------------------------------------------------------
def read_correct(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image_id, label, correct) of a selected run's predictions.csv."""
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


def paired(a: Entry, b: Entry, method: str) -> Any:
    """Interval of top1(a) - top1(b) over the seeds both have (same seed: same split, labels, init)."""
    from heads.stats import paired_interval

    common = [s for s in a.seeds if s in b.seeds]
    if not common:
        return None
    ia, ib = [a.seeds.index(s) for s in common], [b.seeds.index(s) for s in common]
    return paired_interval(a.correct[ia], b.correct[ib], method=method, resamples=RESAMPLES, seed=0)


def accuracy_band(e: Entry, method: str) -> tuple[float, float]:
    """95% interval of one method's mean test top-1 (the same interval kind as the differences)."""
    from heads.stats import hierarchical_bootstrap, t_interval

    if method == "t" and len(e.seeds) > 1:
        iv = t_interval(e.correct.mean(1))
    else:
        iv = hierarchical_bootstrap(e.correct, resamples=RESAMPLES, seed=0)
    return iv.low, iv.high


# --- setup --------------------------------------------------------------------------------------------
# --- the blocks -------------------------------------------------------------------------------------------
def build_report(plan: Any, stage_seconds: dict[str, float]) -> list[Block]:
    """Every block of the report, from the study's files."""
    from heads import artifacts

    spec = plan.spec
    sweep_dir = spec.out / "sweep"
    info = artifacts.read_json(sweep_dir / "sweep.json")
    entries = sorted(load_entries(sweep_dir), key=lambda e: (k_order(e.k), spec.methods.index(e.aux)))
    train = cache_attrs(info["identity"]["train_cache"]["path"])
    untrained = "untrained" in str(train.get("backbone_weights", ""))
    blocks = [Block("h1", f"Study `{spec.name}`: does PIRL or DCL help this frozen backbone, at how many labels?")]
    if untrained:
        blocks.append(Block("p", f"**UNTRAINED BACKBONE: `{spec.backbone}` has random weights "
                                  f"({train.get('backbone_weights')}). Every number below measures heads trained on "
                                  "random features; it says nothing about a pretrained model or about the methods on "
                                  "real data.**"))
    blocks += setup_blocks(plan, train, stage_seconds)
    blocks += protocol_blocks(plan, entries)
    blocks += results_blocks(plan, entries)
    blocks += class_blocks(plan, entries, train["class_names"])
    blocks += reproduce_blocks(plan, entries, info)
    return blocks


def setup_blocks(plan: Any, train: dict[str, Any], stage_seconds: dict[str, float]) -> list[Block]:
    spec = plan.spec
    views = ", ".join(k if k == "original" else f"{k} x {spec.num_views}" for k in spec.kinds)
    grids = f"jigsaw grid {spec.jigsaw_grid}, RCM grid {spec.rcm_grid} (k = {spec.rcm_k:g})"
    if "patches" in spec.kinds:
        _cell, patch, jitter = spec.patch_geometry()
        grids += f", patches {spec.patch_grid} x {spec.patch_grid} crops of {patch} px (jitter {jitter} px)"
    maps = f"spatial maps {plan.spatial_hw[0]} x {plan.spatial_hw[1]}" if plan.spatial_hw else "no spatial maps"
    rows = plan.train_rows
    times = ", ".join(f"{k} {fmt_time(v)}" for k, v in stage_seconds.items())
    items = [
        f"Dataset: `{spec.data_root}`, {plan.classes} classes; official train split {plan.splits['train'].images} "
        f"images (of which {rows.val} validation rows, {describe_validation(spec)}), test split "
        f"{plan.splits['test'].images} images.",
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


def protocol_blocks(plan: Any, entries: list[Entry]) -> list[Block]:
    spec = plan.spec
    interval = ("a hierarchical bootstrap (10,000 resamples: seeds with replacement, then test images with "
                "replacement; one image draw applies to every drawn seed, since every seed is scored on the same "
                "test set), percentile interval" if spec.interval == "bootstrap"
                else "Student's t over the seeds' paired differences (the test set's own sampling noise is not in it)")
    cv = spec.selection == "cv"
    rows = [["K (labels per class)", "labelled training rows per class", "validation rows per class",
             "labels per class in all", "labels in all"]]
    per_class_val = 0 if cv else plan.train_rows.val / max(plan.classes, 1)
    for k in sorted({e.k for e in entries}, key=k_order):
        r = plan_rows(plan, k)
        lab = r.labelled / max(plan.classes, 1)
        val = 0 if cv else r.val
        rows.append([k, f"{lab:g}", f"{per_class_val:g}", f"{lab + per_class_val:g}", f"{r.labelled + val:,}"])
    return [Block("h2", "Protocol"), Block("list", [
        selection_item(spec), *search_items(spec),
        "**The test split is scored once**, for the selected setting's runs only; no other run ever saw it.",
        "Each K labels K training images per class (a nested seeded draw: the images labelled at K = 2 are among "
        "those at K = 5); PIRL's and DCL's label-free losses also see the unlabelled rest. "
        + ("Selection used these K labels only: the table counts no validation row." if cv else
           "Validation labels are labels too: the table counts them."),
        f"Intervals: 95%, {interval}. Differences are paired: the same seed gives both methods the same validation "
        "split, labelled rows and initialisation. An interval that contains 0 does not show a difference.",
    ]), Block("table", rows),
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
            "per seed from the training split.")


def search_items(spec: Any) -> list[str]:
    """The protocol's line on successive halving ([heads] search = "halving"); none for the full grid."""
    if getattr(spec, "search", "grid") != "halving":
        return []
    return [f"**Search: successive halving** (eta {spec.halving_eta}, {spec.halving_rungs} rungs; heads.search): "
            "within each method and K, settings were ranked by mean validation top-1 over seeds after a shorter "
            "budget and the worse ones stopped; selection took only among the validation records of the settings "
            "that trained the full budget (stopped runs: `stopped_at_epoch` in sweep/runs.csv, never eligible), "
            "and the test split was read after selection only."]


def plan_rows(plan: Any, k: str) -> Any:
    from .plan import study_rows

    return study_rows(plan.spec, plan.splits["train"].images, plan.classes, k)


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def diff_text(iv: Any) -> str:
    if iv is None:
        return "–"
    return f"{100 * iv.mean:+.2f} [{100 * iv.low:+.2f}, {100 * iv.high:+.2f}]"


def effect_text(a: Entry, b: Entry, method: str) -> tuple[str, Any]:
    """(the cell, the interval or None) of a - b; no interval when either did not learn: never an effect."""
    sick = [e.aux for e in (a, b) if not e.learned]
    if sick:
        return f"not an effect: {' and '.join(sick)} did not learn", None
    iv = paired(a, b, method)
    return diff_text(iv), iv


def setting_text(e: Entry, spec: Any = None) -> str:
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


def comparisons(entries: list[Entry], k: str) -> dict[str, tuple[Entry | None, Entry | None]]:
    """method -> (its own same-network baseline, the linear probe) at K."""
    from heads.options import BASELINE_OF

    at = {e.aux: e for e in entries if e.k == k}
    return {a: (at.get(BASELINE_OF.get(a, "")), at.get("linear") if a != "linear" else None) for a in at}


def results_blocks(plan: Any, entries: list[Entry]) -> list[Block]:
    spec = plan.spec
    chosen_by = "cross-validation" if spec.selection == "cv" else "validation"
    blocks = [Block("h2", f"Results: test top-1 at each method's {chosen_by}-selected setting")]
    own: dict[tuple[str, str], Any] = {}  # (method, K) -> its paired interval against its own baseline
    for k in sorted({e.k for e in entries}, key=k_order):
        rows = [["method", f"selected setting ({'cross-validated' if spec.selection == 'cv' else 'validation'} top-1, "
                 "settings compared)", "test top-1 % (mean ± std, n)",
                 "Δ vs own baseline (points, 95%)", "Δ vs linear probe (points, 95%)"]]
        pairs = comparisons(entries, k)
        for e in (e for e in entries if e.k == k):
            base, linear = pairs[e.aux]
            top1 = e.correct.mean(1)
            std = top1.std(ddof=1) if len(top1) > 1 else 0.0
            if base:
                cell, own[e.aux, k] = effect_text(e, base, spec.interval)
            method = e.aux if e.learned else f"{e.aux} (did not learn: {e.health})"
            rows.append([method, f"{setting_text(e, spec)} ({pct(e.val_mean)} ± {pct(e.val_std)}, best of {e.candidates})",
                         f"{pct(top1.mean())} ± {pct(std)} (n={len(top1)})",
                         f"vs {base.aux}: {cell}" if base else "–",
                         effect_text(e, linear, spec.interval)[0] if linear else "–"])
        blocks += [Block("h3", f"K = {k} labelled images per class" if k != "all" else "K = all training labels"),
                   Block("table", rows)]
    figure = label_figure(plan, entries, own)
    if figure:
        blocks += [Block("h2", "Label efficiency"), Block("img", (figure, "test top-1 against labels per class"))]
    return blocks


def label_figure(plan: Any, entries: list[Entry], own: dict[tuple[str, str], Any]) -> Path | None:
    """figures/label_efficiency.png: accuracy per method with its 95% band, and the paired differences with theirs
    (`own`: the table's intervals against each method's own baseline, drawn as they are, not computed again)."""
    from heads.plots import pyplot

    spec = plan.spec
    ks = sorted({e.k for e in entries}, key=k_order)
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = list(range(len(ks)))
    for i, aux in enumerate(spec.methods):
        pts = [(x, next((e for e in entries if e.aux == aux and e.k == k), None)) for x, k in zip(xs, ks)]
        pts = [(x, e) for x, e in pts if e is not None]
        if not pts:
            continue
        m = [100 * e.correct.mean() for _, e in pts]
        band = np.array([accuracy_band(e, spec.interval) for _, e in pts]) * 100
        left.plot([x for x, _ in pts], m, marker="o", color=f"C{i}", label=aux)
        left.fill_between([x for x, _ in pts], band[:, 0], band[:, 1], color=f"C{i}", alpha=0.18)
        diffs = [(x, own[aux, e.k]) for x, e in pts if own.get((aux, e.k)) is not None]
        if diffs:
            d = np.array([[100 * iv.mean, 100 * iv.low, 100 * iv.high] for _, iv in diffs])
            right.plot([x for x, _ in diffs], d[:, 0], marker="o", color=f"C{i}", label=f"{aux} - its baseline")
            right.fill_between([x for x, _ in diffs], d[:, 1], d[:, 2], color=f"C{i}", alpha=0.18)
    for ax in (left, right):
        ax.set_xticks(xs, ks)
        ax.set_xlabel("labelled training images per class (K)")
    right.axhline(0, color="k", lw=0.8)
    left.set_ylabel("test top-1 (%)")
    right.set_ylabel("Δ test top-1 (points)")
    kind = "hierarchical bootstrap" if spec.interval == "bootstrap" else "t over seeds"
    left.set_title(f"each method at its selected setting per K\n(band: 95% interval, {kind})", fontsize=9)
    right.set_title(f"paired difference against the same-network baseline\n(band: 95% interval, {kind})", fontsize=9)
    left.legend(fontsize=8)
    if right.lines[1:]:
        right.legend(fontsize=8)
    fig.tight_layout()
    path = spec.out / "figures" / "label_efficiency.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with created_atomically(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def class_display(dataset: str) -> Any:
    """How a class name is shown: CUB's and NABirds' '017.Cardinal' as 'Cardinal'; other datasets' as stored."""
    from pipeline.datasets.cub import display_name

    return display_name if dataset in ("cub", "nabirds") else (lambda name: name)


def class_blocks(plan: Any, entries: list[Entry], class_names: list[str]) -> list[Block]:
    """Per-class gains and losses of each method over its own baseline: the species that move most, by name."""
    display_name = class_display(plan.spec.dataset)
    blocks = [Block("h2", "Per-class gains and losses against the same-network baseline"),
              Block("p", f"Per-class test top-1 of the method minus its baseline, mean over the seeds both have "
                         f"(points); the {TOP_CLASSES} classes that gain and the {TOP_CLASSES} that lose most.")]
    any_pair = False
    for k in sorted({e.k for e in entries}, key=k_order):
        for e in (e for e in entries if e.k == k):
            base = comparisons(entries, k)[e.aux][0]
            if base is None:
                continue
            any_pair = True
            common = [s for s in e.seeds if s in base.seeds]
            d = (e.correct[[e.seeds.index(s) for s in common]].mean(0)
                 - base.correct[[base.seeds.index(s) for s in common]].mean(0))
            classes = np.unique(e.label)
            per = np.array([d[e.label == c].mean() for c in classes])
            order = np.argsort(-per, kind="stable")
            gains = [i for i in order[:TOP_CLASSES] if per[i] > 0]
            losses = [i for i in order[::-1][:TOP_CLASSES] if per[i] < 0]
            fmt = lambda idx: ", ".join(f"{display_name(class_names[classes[i]])} ({100 * per[i]:+.1f})"  # noqa: E731
                                        for i in idx) or "none"
            blocks.append(Block("list", [f"**{e.aux} vs {base.aux}, K = {k}**: gains: {fmt(gains)}; "
                                         f"losses: {fmt(losses)}"]))
    if not any_pair:
        blocks.append(Block("p", "No method here has its same-network baseline in the study (pirl pairs with none, "
                                 "dcl with dcl-none)."))
    return blocks


def train_heads_command(run: Path, sweep_info: dict[str, Any]) -> str:
    """The train-heads command that trains this run again and scores it on the test split (same run_experiment)."""
    from heads import artifacts
    from heads.options import OPTIONS_BY_NAME, applicable

    config = artifacts.read_json(run / "config.json")
    o = config["options"]
    ident = sweep_info["identity"]
    parts = ["train-heads", "--train", ident["train_cache"]["path"], "--test", ident["test_cache"]["path"],
             "--aux", o["aux"], "--seed", str(o["seed"])]
    if o.get("val_per_class"):
        parts += ["--val-per-class", str(o["val_per_class"])]
    else:
        parts += ["--val-fraction", str(o["val_fraction"])]
    for opt in applicable(o["aux"]):
        if opt.name in o and opt.sweepable and o[opt.name] != OPTIONS_BY_NAME[opt.name].default:
            parts += [opt.flag, str(o[opt.name])]
    return " ".join(parts)


def reproduce_blocks(plan: Any, entries: list[Entry], info: dict[str, Any]) -> list[Block]:
    spec = plan.spec
    blocks = [Block("h2", "Reproducing every number"),
              Block("list", [f"The whole study: `study {spec.path}` (rerunning it reuses every finished run).",
                             "Each test metric: the selected runs' `predictions.csv` "
                             "(`heads.metrics.metrics_from_predictions_csv`), or `evaluate-heads RUN...` from their "
                             "`model.pt`; the selection: `sweep/runs.csv` and `sweep/selection.json`.",
                             "Each seed of each row again from scratch: the `train-heads` command below (the same "
                             "experiment function; it scores the test split once at the end)." if spec.selection != "cv"
                             else "Each row again from scratch: the study command (or `sweep-heads --selection cv` "
                             "with the study's grid); a cross-validation final run has no `train-heads` form."])]
    lines = []
    for e in entries:
        runs = " ".join(str(r) for r in e.runs)
        lines.append(f"# {e.aux}, K = {e.k}: {setting_text(e, spec)}")
        lines.append(f"evaluate-heads {runs}")
        if spec.selection != "cv":  # a cv final run (all K rows, the folds' epoch count) has no train-heads form
            lines += [train_heads_command(r, info) for r in e.runs]
    blocks.append(Block("code", "\n".join(lines)))
    return blocks


# --- rendering ---------------------------------------------------------------------------------------------
def _inline_md(text: str) -> str:
    return text


def _inline_html(text: str) -> str:
    out = html.escape(text.replace(TIMING, "").rstrip(), quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def to_markdown(blocks: list[Block], root: Path) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out += ["#" * int(b.kind[1]) + " " + b.content, ""]
        elif b.kind == "p":
            out += [b.content, ""]
        elif b.kind == "list":
            out += [f"- {item}" for item in b.content] + [""]
        elif b.kind == "table":
            header, *rows = b.content
            out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            out += ["| " + " | ".join(r) + " |" for r in rows] + [""]
        elif b.kind == "img":
            path, alt = b.content
            out += [f"![{alt}]({os.path.relpath(path, root)})", ""]
        elif b.kind == "code":
            out += ["```", b.content, "```", ""]
    return "\n".join(out)


def to_html(blocks: list[Block], title: str) -> str:
    body: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            body.append(f"<{b.kind}>{_inline_html(b.content)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline_html(b.content)}</p>")
        elif b.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "table":
            header, *rows = b.content
            body.append("<table><tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in header) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>" for r in rows)
                        + "</table>")
        elif b.kind == "img":
            path, alt = b.content
            data = base64.b64encode(Path(path).read_bytes()).decode()
            body.append(f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>')
        elif b.kind == "code":
            body.append(f"<details><summary>commands</summary><pre>{html.escape(b.content)}</pre></details>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.3em .6em;"
             "text-align:left}img{max-width:100%}pre{background:#f4f4f4;padding:1em;overflow-x:auto;font-size:.8em}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(plan: Any, stage_seconds: dict[str, float]) -> tuple[Path, Path]:
    """report.md and report.html in the study directory."""
    return write_blocks(build_report(plan, stage_seconds), plan.spec.out, f"Study {plan.spec.name}")


def write_blocks(blocks: list[Block], out: Path, title: str) -> tuple[Path, Path]:
    """out/report.md and out/report.html from the blocks, each renamed into place when whole."""
    md, page = out / "report.md", out / "report.html"
    with created_atomically(md) as tmp:
        tmp.write_text(to_markdown(blocks, out))
    with created_atomically(page) as tmp:
        tmp.write_text(to_html(blocks, title))
    return md, page


def without_timing(text: str) -> str:
    """The report minus its wall-clock lines: what two runs of one study must agree on."""
    return "\n".join(line for line in text.splitlines() if TIMING not in line)
