"""The report of a study over several datasets ([[datasets]] in the spec): a column per dataset.

Each dataset's own study (out/<label>/report.md) holds its setup, protocol, figures, per-class lists and
commands; this report puts their main numbers side by side: at each K, each method's test top-1 (mean +- std
over seeds, at its validation-selected setting) and its paired 95% interval against its own same-network
baseline, one column per dataset. Every number is read from the same selection.json and predictions.csv
files, with the same intervals, as the datasets' own reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import (Block, Entry, _diff, _pct, cache_attrs, comparisons, k_order, load_entries, paired,
                     write_blocks)


def cell(entries: list[Entry], entry: Entry | None, k: str, interval: str) -> str:
    """'71.20 ± 0.30 (n=3); vs none +1.10 [+0.20, +2.00]' for one method, K and dataset ('–' when absent)."""
    if entry is None:
        return "–"
    top1 = entry.correct.mean(1)
    std = top1.std(ddof=1) if len(top1) > 1 else 0.0
    text = f"{_pct(top1.mean())} ± {_pct(std)} (n={len(top1)})"
    base = comparisons(entries, k)[entry.aux][0]
    return text + (f"; vs {base.aux} {_diff(paired(entry, base, interval))}" if base is not None else "")


def dataset_header(spec: Any) -> str:
    return f"{spec.label} ({spec.dataset})" if spec.label != spec.dataset else spec.label


def untrained_note(specs: list[Any]) -> list[Block]:
    """The untrained-weights warning, at the top, when any dataset's training cache came from random weights."""
    weights = {cache_attrs(str(s.train_cache)).get("backbone_weights", "") for s in specs}
    if not any("untrained" in str(w) for w in weights):
        return []
    return [Block("p", f"**UNTRAINED BACKBONE: `{specs[0].backbone}` has random weights. Every number below "
                       "measures heads trained on random features; it says nothing about a pretrained model or "
                       "about the methods on real data.**")]


def table_blocks(specs: list[Any], entries: dict[str, list[Entry]]) -> list[Block]:
    """At each K: a row per method, a column per dataset."""
    ks = sorted({e.k for es in entries.values() for e in es}, key=k_order)
    interval = specs[0].interval
    blocks = []
    for k in ks:
        rows = [["method"] + [dataset_header(s) for s in specs]]
        for aux in specs[0].methods:
            at = [next((e for e in entries[s.label] if e.k == k and e.aux == aux), None) for s in specs]
            rows.append([aux] + [cell(entries[s.label], e, k, interval) for s, e in zip(specs, at)])
        blocks += [Block("h3", f"K = {k} labelled images per class" if k != "all" else "K = all training labels"),
                   Block("table", rows)]
    return blocks


def build_compare(specs: list[Any]) -> list[Block]:
    entries = {s.label: load_entries(s.out / "sweep") for s in specs}
    kind = "hierarchical bootstrap (seeds, then test images)" if specs[0].interval == "bootstrap" else "t over seeds"
    blocks = [Block("h1", f"Study `{specs[0].name}` on {len(specs)} datasets: does PIRL or DCL help this frozen "
                          "backbone, at how many labels?")]
    blocks += untrained_note(specs)
    blocks.append(Block("p", f"Test top-1 % at each method's validation-selected setting (mean ± std over seeds, n "
                             f"seeds) and the paired 95% interval ({kind}) of the difference against its own "
                             "same-network baseline (pirl vs none, dcl vs dcl-none), in points. Each dataset was "
                             "run with the same spec: backbone, views, methods, grids, K ladder and seeds."))
    blocks += table_blocks(specs, entries)
    blocks.append(Block("h2", "Each dataset's report"))
    blocks.append(Block("list", [f"{dataset_header(s)}: `{s.out / 'report.md'}` (setup, protocol, label-efficiency "
                                 "figure, per-class gains and losses, the command behind each number)" for s in specs]))
    return blocks


def write_compare_report(specs: list[Any]) -> tuple[Path, Path]:
    """report.md and report.html in the directory above the datasets' studies."""
    return write_blocks(build_compare(specs), specs[0].out.parent, f"Study {specs[0].name} on {len(specs)} datasets")
