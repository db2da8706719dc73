"""The report of a study over several datasets ([[datasets]] in the spec): the same shape as one dataset's report.

Each dataset's own study (out/<label>/report.md) holds its setup, protocol, per-class changes, commands and
per-run figures; this report puts their answers side by side. On top, the banner and the answer: one matrix with
a block of rows per dataset (chance, each method's test top-1 mean ± std and its paired difference against its
named baseline with the 95% interval, marked where it excludes 0, the rows per class each K used, n), a
sentence per method and dataset and the standing caution; then the glossary; then at each K a table with a
column per dataset (test top-1 and the interval against the same-network baseline, as the datasets' own tables
print it); then label_efficiency.png beside report.md, a pair of panels per dataset drawn by the datasets' own
figure functions. Every number is a `study.report.write.Results` value of its dataset: the same selection.json,
predictions.csv and intervals as the datasets' own reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.files import created_atomically

from study.report.answer import MARK, answer_rows, caution_parts, glossary_blocks, sentence
from study.report.render import Block, write_blocks
from heads.cells import K, k_order, k_text
from study.report.results import Results, collect, k_title, pct, show

FIGURE = "label_efficiency.png"


@dataclass
class Cell:
    """One method at one K on one dataset, as the per-K table shows it: test top-1 over seeds and the paired
    interval against the same-network baseline."""

    mean: float  # fractions
    std: float
    n: int
    base: str | None  # the same-network baseline's method, when the study has it
    diff: Any  # heads.results.stats.Interval of top1(method) - top1(base), or None (also when either did not learn)
    note: str = ""  # why there is no difference: "not an effect: dcl did not learn"
    delta: str | None = None  # Δ as printed (results.Effect.delta: the difference of the printed means)


def cell_values(r: Results, aux: str, k: K) -> Cell | None:
    """The numbers of one table cell (None when the method has no run at K on this dataset)."""
    from study.report.results import own_baseline

    e = r.entry(aux, k)
    if e is None:
        return None
    mean, std = e.top1
    base = own_baseline(aux, r.methods)
    effect = r.effect(aux, base, k) if base else None
    if effect is None:
        return Cell(mean, std, len(e.seeds), None, None)
    return Cell(mean, std, len(e.seeds), base, effect.interval, effect.note, effect.delta())


def cell_text(c: Cell | None) -> str:
    """'71.20 ± 0.30 (n=3); vs none +1.10 [+0.20, +2.00]' ('–' when absent)."""
    from study.report.results import diff_text

    if c is None:
        return "–"
    text = f"{pct(c.mean)} ± {pct(c.std)} (n={c.n})"
    return text + (f"; vs {show(c.base)} {c.note or diff_text(c.diff, c.delta)}" if c.base is not None else "")


def all_ks(results: list[Results]) -> list[K]:
    return sorted({k for r in results for k in r.ks}, key=k_order)


def table_values(specs: list[Any], results: list[Results]) -> dict[K, dict[str, list[Cell | None]]]:
    """K -> method -> a Cell per dataset (specs' order): what the per-K tables print."""
    return {k: {aux: [cell_values(r, aux, k) for r in results] for aux in specs[0].methods} for k in all_ks(results)}


def dataset_header(spec: Any) -> str:
    return f"{spec.label} ({spec.dataset})" if spec.label != spec.dataset else spec.label


def banner_blocks(specs: list[Any], results: list[Results]) -> list[Block]:
    """Untrained weights (any dataset's training cache) and synthetic datasets, before any number."""
    parts = []
    if any(r.untrained for r in results):
        parts.append(f"UNTRAINED BACKBONE: `{specs[0].backbone}` has random weights. Every number below measures "
                     "heads trained on random features; it says nothing about a pretrained model or about the methods "
                     "on real data.")
    synthetic = [dataset_header(s) for s, r in zip(specs, results) if r.synthetic]
    if synthetic:
        parts.append(f"SYNTHETIC SAMPLE: {', '.join(synthetic)} made by make-sample-dataset: not the datasets' images.")
    return [Block("banner", " ".join(f"**{p}**" for p in parts))] if parts else []


def answer_blocks(specs: list[Any], results: list[Results]) -> list[Block]:
    """The answer across datasets: a block of rows per dataset, a sentence per method and dataset, the caution."""
    from heads.results.stats import INTERVAL_NAMES

    ks = all_ks(results)
    rows: list[list[Any]] = [["dataset", "method (Δ against)"] + [k_title(k) for k in ks]]
    for spec, r in zip(specs, results):
        rows += [[dataset_header(spec)] + row for row in answer_rows(r, ks)]
    caption = (f"Test top-1 % (mean ± std over seeds) of each method at its selected setting on each dataset; "
               f"**Δ**: its paired difference in points against the named baseline (same seeds), with the 95% "
               f"interval ({INTERVAL_NAMES[specs[0].interval]}); **{MARK}**: the interval excludes 0. Terms: "
               "[Glossary](#glossary).")
    sentences = [f"{dataset_header(s)}: {sentence(r, aux)}" for s, r in zip(specs, results) for aux in r.methods]
    parts = list(dict.fromkeys(p for r in results for p in caution_parts(r)))
    blocks = [Block("h2", "Answer"), Block("p", caption), Block("table", rows), Block("list", sentences)]
    return blocks + ([Block("caution", "**Caution.** " + " ".join(parts))] if parts else [])


def power_blocks(specs: list[Any], results: list[Results]) -> list[Block]:
    """Each dataset's power table (study.report.answer.power_table: the MDE of each comparison and the seeds the target
    effect needs); the rule and the seed growth are in each dataset's own report."""
    from heads.results.stats import POWER_RULE

    from study.report.answer import points_word, power_table

    tables = [(s, power_table(r)) for s, r in zip(specs, results)]
    if not any(t for _s, t in tables):
        return []
    blocks = [Block("h2", "Power"),
              Block("p", f"For each comparison, the minimum detectable effect (MDE, points) and the seeds that would "
                         f"detect {points_word(specs[0].target_effect)} ([heads] target_effect): {POWER_RULE}. Each "
                         "dataset's own report states its seed growth.")]
    for spec, table in tables:
        if table:
            blocks += [Block("h3", dataset_header(spec)), Block("table", table)]
    return blocks


def table_blocks(specs: list[Any], values: dict[K, dict[str, list[Cell | None]]]) -> list[Block]:
    """At each K: a row per method, a column per dataset."""
    blocks = [Block("h2", "Results by K, a column per dataset (Δ against the same-network baseline)")]
    for k, rows_of in values.items():
        rows = [["method"] + [dataset_header(s) for s in specs]]
        rows += [[show(aux)] + [cell_text(c) for c in cells] for aux, cells in rows_of.items()]
        blocks += [Block("h3", f"K = {k_text(k)} labelled images per class" if k is not None
                         else "K = all training labels"),
                   Block("table", rows)]
    return blocks


def label_figure(specs: list[Any], results: list[Results]) -> Path | None:
    """label_efficiency.png beside report.md: per dataset, its own report's two panels (study.report.figures)."""
    import matplotlib

    from heads.results.plots import flags_text
    from heads.training.figures import FONTS, pyplot
    from heads.results.stats import INTERVAL_NAMES

    from study.report.figures import answer_panels

    if not any(r.entries for r in results):
        return None
    plt = pyplot()
    with matplotlib.rc_context(FONTS):
        fig, axes = plt.subplots(2, len(specs), figsize=(6.5 * len(specs), 10), squeeze=False, layout="constrained")
        for d, (spec, r) in enumerate(zip(specs, results)):
            top, bottom = axes[0][d], axes[1][d]
            answer_panels(top, bottom, r, dict(loc="best", frameon=True, framealpha=0.85))
            top.set_title(f"{dataset_header(spec)}: test top-1\n"
                          f"({flags_text(r.untrained, bool(r.synthetic), r.seeds)})")
            bottom.set_title(f"{dataset_header(spec)}: Δ against the named baseline")
        fig.suptitle(f"Study {specs[0].name}: bars: 95% interval, {INTERVAL_NAMES[specs[0].interval]}")
        path = specs[0].out.parent / FIGURE
        with created_atomically(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def figure_blocks(specs: list[Any], results: list[Results]) -> list[Block]:
    """The label-efficiency figure and its caption (which says when the backbone weights are untrained)."""
    path = label_figure(specs, results)
    if path is None:
        return []
    untrained = any(r.untrained for r in results)
    caption = ("Top row: each method's test top-1 % against K with its 95% interval (a hollow point did not learn), "
               "chance dashed; bottom row: each method's paired difference against its named baseline (method − "
               "baseline in the legend). A pair of panels per dataset, as its own report draws them.")
    if untrained:
        caption = (f"**UNTRAINED BACKBONE: `{specs[0].backbone}` has random weights; these curves measure heads "
                   f"trained on random features.** {caption}")
    alt = "test top-1 against labels per class, a panel per dataset" + (" (untrained backbone)" if untrained else "")
    return [Block("h2", "Label efficiency"), Block("img", (path, alt)), Block("p", caption)]


def build_compare(specs: list[Any]) -> list[Block]:
    results = [collect(s) for s in specs]
    values = table_values(specs, results)
    blocks = [Block("h1", f"Study `{specs[0].name}` on {len(specs)} datasets: does PIRL or DCL help this frozen "
                          "backbone, at how many labels?")]
    blocks += banner_blocks(specs, results)
    blocks.append(Block("toc", None))
    blocks += answer_blocks(specs, results)
    blocks += power_blocks(specs, results)
    blocks += glossary_blocks(results[0], [(dataset_header(s), r) for s, r in zip(specs, results)])
    blocks.append(Block("p", "Each dataset was run with the same spec: backbone, views, methods, grids, K ladder and "
                             "seeds."))
    blocks += table_blocks(specs, values)
    blocks += figure_blocks(specs, results)
    out = specs[0].out.parent
    blocks.append(Block("h2", "Each dataset's report"))
    blocks.append(Block("list", [f"{dataset_header(s)}: [{os.path.relpath(s.out / 'report.md', out)}]"
                                 f"({os.path.relpath(s.out / 'report.md', out)}) (setup, protocol, per-class changes, "
                                 "commands.sh, per-run figures)" for s in specs]))
    return blocks


def write_compare_report(specs: list[Any]) -> tuple[Path, Path]:
    """report.md and report.html (and label_efficiency.png) in the directory above the datasets' studies."""
    return write_blocks(build_compare(specs), specs[0].out.parent, f"Study {specs[0].name} on {len(specs)} datasets")
