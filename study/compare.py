"""The report of a study over several datasets ([[datasets]] in the spec): a column per dataset.

Each dataset's own study (out/<label>/report.md) holds its setup, protocol, figures, per-class lists and
commands; this report puts their main numbers side by side: at each K, each method's test top-1 (mean +- std
over seeds, at its validation-selected setting) and its paired 95% interval against its own same-network
baseline, one column per dataset. Every number is read from the same selection.json and predictions.csv
files, with the same intervals, as the datasets' own reports. The label-efficiency figure beside report.md
draws the table's own cells (one `table_values` computes both), a panel per dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.files import created_atomically

from .facts import cache_attrs
from .report import (Block, comparisons, diff_text, effect_text, Entry, k_order, load_entries, pct, write_blocks)

FIGURE = "label_efficiency.png"


@dataclass
class Cell:
    """One method at one K on one dataset, as the table shows it: test top-1 over seeds and the paired interval."""

    mean: float  # fractions, as in Entry.correct
    std: float
    n: int
    base: str | None  # the same-network baseline's method, when the study has it
    diff: Any  # heads.stats.Interval of top1(method) - top1(base), or None (also when either did not learn)
    note: str = ""  # why there is no difference: "not an effect: dcl did not learn"


def cell_values(entries: list[Entry], entry: Entry | None, k: str, interval: str) -> Cell | None:
    """The numbers of one table cell (None when the method has no run at K on this dataset)."""
    if entry is None:
        return None
    top1 = entry.correct.mean(1)
    std = float(top1.std(ddof=1)) if len(top1) > 1 else 0.0
    base = comparisons(entries, k)[entry.aux][0]
    text, diff = effect_text(entry, base, interval) if base is not None else ("", None)
    return Cell(float(top1.mean()), std, len(top1), base.aux if base is not None else None, diff,
                text if diff is None else "")


def cell_text(c: Cell | None) -> str:
    """'71.20 ± 0.30 (n=3); vs none +1.10 [+0.20, +2.00]' ('–' when absent)."""
    if c is None:
        return "–"
    text = f"{pct(c.mean)} ± {pct(c.std)} (n={c.n})"
    return text + (f"; vs {c.base} {c.note or diff_text(c.diff)}" if c.base is not None else "")


def cell(entries: list[Entry], entry: Entry | None, k: str, interval: str) -> str:
    """One table cell's text, for one method, K and dataset."""
    return cell_text(cell_values(entries, entry, k, interval))


def table_values(specs: list[Any], entries: dict[str, list[Entry]]) -> dict[str, dict[str, list[Cell | None]]]:
    """K -> method -> a Cell per dataset (specs' order): what the table prints and the figure draws."""
    ks = sorted({e.k for es in entries.values() for e in es}, key=k_order)
    interval = specs[0].interval
    values: dict[str, dict[str, list[Cell | None]]] = {}
    for k in ks:
        values[k] = {}
        for aux in specs[0].methods:
            at = [next((e for e in entries[s.label] if e.k == k and e.aux == aux), None) for s in specs]
            values[k][aux] = [cell_values(entries[s.label], e, k, interval) for s, e in zip(specs, at)]
    return values


def dataset_header(spec: Any) -> str:
    return f"{spec.label} ({spec.dataset})" if spec.label != spec.dataset else spec.label


def is_untrained(specs: list[Any]) -> bool:
    """Whether any dataset's training cache came from random (untrained) backbone weights."""
    weights = {cache_attrs(str(s.train_cache)).get("backbone_weights", "") for s in specs}
    return any("untrained" in str(w) for w in weights)


def untrained_note(specs: list[Any]) -> list[Block]:
    """The untrained-weights warning, at the top, when any dataset's training cache came from random weights."""
    if not is_untrained(specs):
        return []
    return [Block("p", f"**UNTRAINED BACKBONE: `{specs[0].backbone}` has random weights. Every number below "
                       "measures heads trained on random features; it says nothing about a pretrained model or "
                       "about the methods on real data.**")]


def table_blocks(specs: list[Any], values: dict[str, dict[str, list[Cell | None]]]) -> list[Block]:
    """At each K: a row per method, a column per dataset."""
    blocks = []
    for k, rows_of in values.items():
        rows = [["method"] + [dataset_header(s) for s in specs]]
        rows += [[aux] + [cell_text(c) for c in cells] for aux, cells in rows_of.items()]
        blocks += [Block("h3", f"K = {k} labelled images per class" if k != "all" else "K = all training labels"),
                   Block("table", rows)]
    return blocks


@dataclass
class Series:
    """One method's line on one dataset's panels, in percent and points: exactly the table's cells."""

    ks: list[str]
    mean: list[float]
    std: list[float]
    diff_ks: list[str]  # the Ks where the method's baseline ran too
    diff: list[tuple[float, float, float]]  # (mean, low, high) of the paired difference
    base: str | None


def figure_series(specs: list[Any], values: dict[str, dict[str, list[Cell | None]]]) -> dict[str, dict[str, Series]]:
    """dataset label -> method -> the Series the figure draws (methods with no cell on a dataset left out)."""
    out: dict[str, dict[str, Series]] = {}
    for d, spec in enumerate(specs):
        out[spec.label] = {}
        for aux in specs[0].methods:
            at = [(k, values[k][aux][d]) for k in values if values[k][aux][d] is not None]
            if not at:
                continue
            paired_at = [(k, c) for k, c in at if c.diff is not None]
            out[spec.label][aux] = Series(
                [k for k, _ in at], [100 * c.mean for _, c in at], [100 * c.std for _, c in at],
                [k for k, _ in paired_at],
                [(100 * c.diff.mean, 100 * c.diff.low, 100 * c.diff.high) for _, c in paired_at],
                next((c.base for _, c in at if c.base is not None), None))
    return out


def _draw_dataset(top: Any, bottom: Any, series: dict[str, Series], methods: list[str], ks: list[str]) -> None:
    """One dataset's two panels: test top-1 (band: ± one std over seeds) and the paired difference (band: 95%)."""
    x_of = {k: i for i, k in enumerate(ks)}
    for i, aux in enumerate(methods):
        s = series.get(aux)
        if s is None:
            continue
        xs, m, sd = [x_of[k] for k in s.ks], np.array(s.mean), np.array(s.std)
        top.plot(xs, m, marker="o", color=f"C{i}", label=aux)
        top.fill_between(xs, np.clip(m - sd, 0, 100), np.clip(m + sd, 0, 100), color=f"C{i}", alpha=0.18)
        if s.diff:
            d = np.array(s.diff)
            dx = [x_of[k] for k in s.diff_ks]
            bottom.plot(dx, d[:, 0], marker="o", color=f"C{i}", label=f"{aux} - {s.base}")
            bottom.fill_between(dx, d[:, 1], d[:, 2], color=f"C{i}", alpha=0.18)
    for ax in (top, bottom):
        ax.set_xticks(range(len(ks)), ks)
        ax.set_xlabel("labelled training images per class (K)")
    bottom.axhline(0, color="k", lw=0.8)
    top.set_ylabel("test top-1 (%)")
    bottom.set_ylabel("Δ test top-1 (points)")
    top.legend(fontsize=8)
    if bottom.lines[1:]:
        bottom.legend(fontsize=8)


def label_figure(specs: list[Any], values: dict[str, dict[str, list[Cell | None]]], untrained: bool) -> Path | None:
    """label_efficiency.png beside report.md: per dataset, the table's test top-1 and paired differences per K."""
    from heads.plots import pyplot

    series, ks = figure_series(specs, values), list(values)
    if not ks:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(2, len(specs), figsize=(5.5 * len(specs), 8.0), squeeze=False)
    kind = "hierarchical bootstrap" if specs[0].interval == "bootstrap" else "t over seeds"
    for d, spec in enumerate(specs):
        _draw_dataset(axes[0][d], axes[1][d], series[spec.label], specs[0].methods, ks)
        axes[0][d].set_title(f"{dataset_header(spec)}: each method at its selected setting per K\n"
                             "(band: ± one std over seeds)", fontsize=9)
        axes[1][d].set_title(f"{dataset_header(spec)}: paired difference against the same-network baseline\n"
                             f"(band: 95% interval, {kind})", fontsize=9)
    if untrained:
        fig.suptitle(f"UNTRAINED BACKBONE: {specs[0].backbone} has random weights (heads on random features)",
                     fontsize=10, color="red")
    fig.tight_layout()
    path = specs[0].out.parent / FIGURE
    with created_atomically(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def figure_blocks(specs: list[Any], values: dict[str, dict[str, list[Cell | None]]]) -> list[Block]:
    """The label-efficiency figure and its caption (which says when the backbone weights are untrained)."""
    untrained = is_untrained(specs)
    path = label_figure(specs, values, untrained)
    if path is None:
        return []
    caption = ("Top row: each method's test top-1 % against K, mean over seeds with a band of ± one std (the "
               "table's mean ± std); bottom row: its paired difference against the same-network baseline with the "
               "table's 95% interval. A panel per dataset.")
    if untrained:
        caption = (f"**UNTRAINED BACKBONE: `{specs[0].backbone}` has random weights; these curves measure heads "
                   f"trained on random features.** {caption}")
    alt = "test top-1 against labels per class, a panel per dataset" + (" (untrained backbone)" if untrained else "")
    return [Block("h2", "Label efficiency"), Block("img", (path, alt)), Block("p", caption)]


def build_compare(specs: list[Any]) -> list[Block]:
    entries = {s.label: load_entries(s.out / "sweep") for s in specs}
    values = table_values(specs, entries)
    kind = "hierarchical bootstrap (seeds, then test images)" if specs[0].interval == "bootstrap" else "t over seeds"
    blocks = [Block("h1", f"Study `{specs[0].name}` on {len(specs)} datasets: does PIRL or DCL help this frozen "
                          "backbone, at how many labels?")]
    blocks += untrained_note(specs)
    blocks.append(Block("p", f"Test top-1 % at each method's validation-selected setting (mean ± std over seeds, n "
                             f"seeds) and the paired 95% interval ({kind}) of the difference against its own "
                             "same-network baseline (pirl vs none, dcl vs dcl-none), in points. Each dataset was "
                             "run with the same spec: backbone, views, methods, grids, K ladder and seeds."))
    blocks += table_blocks(specs, values)
    blocks += figure_blocks(specs, values)
    blocks.append(Block("h2", "Each dataset's report"))
    blocks.append(Block("list", [f"{dataset_header(s)}: `{s.out / 'report.md'}` (setup, protocol, label-efficiency "
                                 "figure, per-class gains and losses, the command behind each number)" for s in specs]))
    return blocks


def write_compare_report(specs: list[Any]) -> tuple[Path, Path]:
    """report.md and report.html (and label_efficiency.png) in the directory above the datasets' studies."""
    return write_blocks(build_compare(specs), specs[0].out.parent, f"Study {specs[0].name} on {len(specs)} datasets")
