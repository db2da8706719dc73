"""The figures of a study's report: label_efficiency.png (the answer's numbers against K) and, for each selected
row, its first seed's learning curves and test confusion redrawn from the run's files with titles that say the
method, K, setting and seed (figures/runs/), shown as a grid of thumbnails in the HTML.

Each figure's title says "untrained backbone · synthetic data · n seeds" where true (heads.results.plots.flags_text);
the bars of every label-efficiency figure are the 95% interval of the spec's kind (the answer's intervals, drawn
as they are, not computed again); chance is a dashed line.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.files import created_atomically

from study.report.render import Block, Thumb
from study.report.results import Entry, Results, setting_text, show

DODGE = 0.07  # x offset between methods at one K, so that their bars do not overlap


def flags(r: Results) -> str:
    from heads.results.plots import flags_text

    return flags_text(r.untrained, bool(r.synthetic), r.seeds)


def ticks(r: Results) -> list[str]:
    from heads.results.plots import k_tick

    return [k_tick(k, r.counts[k].labelled_text().split(" ")[0]) for k in r.ks]


def draw_series(ax: Any, xs: list[float], values: list[float], intervals: list[Any], color: str, label: str,
                hollow: list[bool] | None = None) -> None:
    """One method's points (in %) joined by a line, each with its 95% interval as a bar (none where the interval
    cannot be computed); `hollow` points did not learn."""
    err = np.array([[v - 100 * iv.low, 100 * iv.high - v] if iv is not None and iv.computable else [np.nan, np.nan]
                    for v, iv in zip(values, intervals)]).T
    ax.errorbar(xs, values, yerr=err, marker="o", color=color, capsize=3, label=label)
    if hollow and any(hollow):
        ax.plot([x for x, h in zip(xs, hollow) if h], [v for v, h in zip(values, hollow) if h], "o", color=color,
                markerfacecolor="white")


def dodge(i: int, count: int) -> float:
    return (i - (count - 1) / 2) * DODGE


def accuracy_panel(ax: Any, r: Results) -> None:
    """Each method's test top-1 per K with its 95% interval; chance dashed; a run that did not learn hollow."""
    from heads.results.stats import pct

    for i, aux in enumerate(r.methods):
        at = [(x, r.entry(aux, k)) for x, k in enumerate(r.ks) if r.entry(aux, k) is not None]
        draw_series(ax, [x + dodge(i, len(r.methods)) for x, _ in at], [float(pct(e.top1[0])) for _, e in at],
                    [r.bands[e.cell] for _, e in at], f"C{i}", show(aux), [not e.learned for _, e in at])
    ax.axhline(100 / r.classes, color="0.35", linestyle="--", linewidth=1, label=f"chance ({pct(1 / r.classes, 1)}%)")
    ax.set_ylim(-3, 103)
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("test top-1 of each method at its selected setting")


def difference_panel(ax: Any, r: Results) -> None:
    """Each method's paired difference against its named baseline per K, as the answer prints it (its Δ, the
    difference of the printed means; a difference with a side that did not learn is not an effect: not drawn)."""
    for i, aux in enumerate(r.methods):
        at = [(x, r.named(aux, k)) for x, k in enumerate(r.ks) if r.named(aux, k) is not None]
        at = [(x, e) for x, e in at if e.interval is not None]
        if at:
            draw_series(ax, [x + dodge(i, len(r.methods)) for x, _ in at], [float(e.delta()) for _, e in at],
                        [e.interval for _, e in at], f"C{i}", f"{show(aux)} − {show(r.baseline(aux))}")
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_ylabel("Δ test top-1 (points)")
    ax.set_title("paired difference against the named baseline")


def answer_panels(top: Any, bottom: Any, r: Results, legend: dict[str, Any]) -> None:
    """The answer's two panels on a K axis: test top-1 (`top`) and the differences against the named baselines
    (`bottom`), each with its legend placed by `legend` (matplotlib's legend arguments)."""
    accuracy_panel(top, r)
    difference_panel(bottom, r)
    for ax in (top, bottom):
        ax.set_xticks(range(len(r.ks)), ticks(r))
        ax.set_xlim(-0.5, len(r.ks) - 0.5)
        ax.set_xlabel("labelled training images per class (K)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(**legend)


def label_figure(r: Results) -> Path | None:
    """figures/label_efficiency.png: the answer's test top-1 and differences against K, one panel above the other
    (readable at a page's width)."""
    import matplotlib

    from heads.training.figures import FONTS, pyplot
    from heads.results.stats import INTERVAL_NAMES

    if not r.entries:
        return None
    plt = pyplot()
    with matplotlib.rc_context(FONTS):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 10), layout="constrained")
        answer_panels(top, bottom, r, dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False))
        fig.suptitle(f"Study {r.spec.name}: {flags(r)} · {r.test_images} test images\n"
                     f"bars: 95% interval, {INTERVAL_NAMES[r.spec.interval]}")
        path = r.spec.out / "figures" / "label_efficiency.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with created_atomically(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def label_figure_blocks(r: Results) -> list[Block]:
    path = label_figure(r)
    if path is None:
        return []
    caption = ("The answer's numbers against K: each method's test top-1 with its 95% interval (a hollow point did "
               "not learn), chance dashed; below, each method's paired difference against its named baseline, "
               "named in the legend (method − baseline); a difference with a side that did not learn is not drawn.")
    return [Block("h2", "Label efficiency"), Block("p", caption),
            Block("img", (path, f"test top-1 and paired differences against labels per class ({flags(r)})"))]


# --- per-run figures ---------------------------------------------------------------------------------------------
def read_history(run: Path) -> list[dict[str, float]]:
    with open(run / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def run_title(r: Results, e: Entry, seed: int) -> str:
    return f"{show(e.aux)}, K = {e.cell.k_text}, {setting_text(e, r.spec)}, seed {seed} · {flags(r).rsplit(' · ', 1)[0]}".rstrip(" ·")


def run_figures(r: Results, e: Entry) -> tuple[Path, Path]:
    """The entry's first seed's curves and test confusion, redrawn under figures/runs/ with full titles."""
    from heads.training import artifacts
    from heads.training.figures import plot_confusion, plot_curves

    run, seed = e.runs[0], e.seeds[0]
    where = r.spec.out / "figures" / "runs"
    where.mkdir(parents=True, exist_ok=True)
    curves, confusion = where / f"{run.name}-curves.png", where / f"{run.name}-confusion.png"
    metrics = artifacts.read_json(run / "metrics.json")
    title = run_title(r, e, seed)
    with created_atomically(curves) as tmp:
        plot_curves(read_history(run), tmp, int(metrics["best_epoch"]), title=title)
    matrix = artifacts.read_json(run / "confusion.json")
    with created_atomically(confusion) as tmp:
        plot_confusion(np.array(matrix["test"]), matrix["class_names"], tmp, title=title)
    return curves, confusion


def run_figure_blocks(r: Results) -> list[Block]:
    """A thumbnail of each selected row's first-seed curves and confusion, each seed's own figures linked."""
    thumbs = []
    for e in r.entries:
        curves, confusion = run_figures(r, e)
        links = [(f"seed {s} {what}", run / f"{what}.png") for s, run in zip(e.seeds, e.runs)
                 for what in ("curves", "confusion")]
        thumbs.append(Thumb(f"{show(e.aux)}, K = {e.cell.k_text}, seed {e.seeds[0]} ({setting_text(e, r.spec)})",
                            [("curves", curves), ("test confusion", confusion)], links))
    if not thumbs:
        return []
    return [Block("h2", "Per-run figures"),
            Block("p", "Each row's first seed: its learning curves (the selected epoch dotted) and test confusion, "
                       "redrawn from its history.csv and confusion.json; every seed's own curves.png and "
                       "confusion.png are linked under each."),
            Block("thumbs", thumbs)]
