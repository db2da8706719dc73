"""What a study's report puts beside itself and links: per_class.csv (every class's change against the named
baseline, with its test images), commands.sh (every command that reproduces a row or a seed, runnable as it is
and relocatable: it changes to the directory the study ran in, found from its own place, and names every path
relative to it), and the report's blocks that show the strongest few classes and one command template with the
links."""

from __future__ import annotations

import csv
import os
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.files import created_atomically, write_atomically

from study.report.render import Block
from study.report.results import Entry, Results, class_display, setting_text, show

TOP_CLASSES = 3
PER_CLASS = "per_class.csv"
COMMANDS = "commands.sh"


# --- per class ------------------------------------------------------------------------------------------------
def class_changes(a: Entry, b: Entry) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(classes, test images per class, a's per-class top-1, b's, seeds both have): means over the common seeds."""
    common = [s for s in a.seeds if s in b.seeds]
    ca = a.correct[[a.seeds.index(s) for s in common]].mean(0)
    cb = b.correct[[b.seeds.index(s) for s in common]].mean(0)
    classes = np.unique(a.label)
    support = np.array([(a.label == c).sum() for c in classes])
    return (classes, support, np.array([ca[a.label == c].mean() for c in classes]),
            np.array([cb[a.label == c].mean() for c in classes]), len(common))


def per_class_rows(r: Results) -> list[dict[str, Any]]:
    """One row per method, K and class: its test top-1 and, against its named baseline, the baseline's and the
    difference (fractions; mean over the seeds both have)."""
    names = r.class_names
    rows = []
    for e in r.entries:
        base = r.entry(r.baseline(e.aux) or "", e.k)
        classes, support, mine, theirs, n = class_changes(e, base if base is not None else e)
        for i, c in enumerate(classes):
            rows.append({"labels_per_class": e.cell.k_text, "method": e.aux, "baseline": base.aux if base else "",
                         "class_index": int(c), "class_name": names[c], "test_images": int(support[i]),
                         "seeds": n if base else len(e.seeds), "method_top1": f"{mine[i]:.6f}",
                         "baseline_top1": f"{theirs[i]:.6f}" if base else "",
                         "difference": f"{mine[i] - theirs[i]:.6f}" if base else "",
                         "method_learned": e.learned, "baseline_learned": base.learned if base else ""})
    return rows


def write_per_class(r: Results) -> Path:
    path = r.spec.out / PER_CLASS
    rows = per_class_rows(r)
    with created_atomically(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["labels_per_class"])
        w.writeheader()
        w.writerows(rows)
    return path


def class_cell(idx: np.ndarray, names: list[str], classes: np.ndarray, diff: np.ndarray, support: np.ndarray,
               show: Any) -> str:
    """'Cardinal +20.0 (5 img), ...' (heads.results.stats.pct, one decimal), or 'no class' (never 'none', a method's name)."""
    from heads.results.stats import pct

    return ", ".join(f"{show(names[classes[i]])} {pct(diff[i], 1, sign=True)} ({support[i]} img)" for i in idx) or "no class"


def class_blocks(r: Results) -> list[Block]:
    """The strongest few per-class changes against the named baseline, each with its test images, a caveat on
    how coarse they are, and every class in per_class.csv."""
    path = write_per_class(r)
    class_name = class_display(r.spec.dataset)
    rows = [["method vs baseline", "K", f"largest gains (points, test images; up to {TOP_CLASSES})",
             f"largest losses (up to {TOP_CLASSES})"]]
    steps = set()
    for e in r.entries:
        effect = r.named(e.aux, e.k)
        if effect is None:
            continue
        classes, support, mine, theirs, n = class_changes(e, effect.b)
        diff = mine - theirs
        steps.add(100 / (int(support.min()) * max(n, 1)))
        order = np.argsort(-diff, kind="stable")
        gains = [i for i in order[:TOP_CLASSES] if diff[i] > 0]
        losses = [i for i in order[::-1][:TOP_CLASSES] if diff[i] < 0]
        label = f"{show(e.aux)} vs {show(effect.b.aux)}" + ("" if effect.interval is not None else " (not an effect)")
        rows.append([label, e.cell.k_text, class_cell(gains, r.class_names, classes, diff, support, class_name),
                     class_cell(losses, r.class_names, classes, diff, support, class_name)])
    link = f"[{PER_CLASS}]({os.path.relpath(path, r.spec.out)})"
    if len(rows) == 1:
        return [Block("h2", "Per-class changes"),
                Block("p", f"No method here has a baseline in the study. Every class's test top-1: {link}.")]
    caveat = (f"Per class: the method's test top-1 minus its named baseline's, mean over the seeds both have, in "
              f"points, with the class's test images. One image of one seed moves a class by up to "
              f"{max(steps):.1f} points here, so these are anecdotes, not findings, unless a class has many images "
              f"and the study many seeds. Every class, method and K: {link}.")
    return [Block("h2", "Per-class changes against the named baseline"), Block("p", caveat), Block("table", rows)]


# --- commands -------------------------------------------------------------------------------------------------
def here(path: Any) -> str:
    """A path as commands.sh names it: relative to the directory the study ran in (the script changes to it)."""
    text = str(path)
    return os.path.relpath(text) if os.path.isabs(text) else text


def train_heads_command(run: Path, sweep_info: dict[str, Any]) -> str:
    """The train-heads command that trains this run again and scores it on the test split (same run_experiment)."""
    from heads.training import artifacts
    from heads.options import OPTIONS_BY_NAME, applicable
    from heads.spec import RunSpec

    config = artifacts.read_json(run / "config.json")
    o = config["options"]
    ident = sweep_info["identity"]
    parts = ["train-heads", "--train", here(ident["train_cache"]["path"]), "--test", here(ident["test_cache"]["path"]),
             "--aux", o["aux"], "--seed", str(o["seed"])]
    if o.get("val_per_class"):
        parts += ["--val-per-class", str(o["val_per_class"])]
    else:
        parts += ["--val-fraction", str(o["val_fraction"])]
    typed = RunSpec.from_record(o).options  # the run's settings, read back once from its config.json
    for opt in applicable(o["aux"]):
        value = typed.value(opt.name)
        if opt.name in o and opt.sweepable and value != OPTIONS_BY_NAME[opt.name].default:
            parts += [opt.flag, str(opt.render(value))]
    return shlex.join(parts)


def entry_commands(r: Results, e: Entry, info: dict[str, Any]) -> list[str]:
    """A row's commands: its test metrics from model.pt, and (selection on validation) each seed from scratch."""
    lines = [f"# {show(e.aux)}, K = {e.cell.k_text}: {setting_text(e, r.spec)}", shlex.join(["evaluate-heads", *map(here, e.runs)])]
    if r.spec.selection != "cv":  # a cv final run (all K rows, the folds' epoch count) has no train-heads form
        lines += [train_heads_command(run, info) for run in e.runs]
    return lines


def write_commands(r: Results, info: dict[str, Any]) -> tuple[Path, int]:
    """commands.sh beside the report: every row's commands, from the directory the study ran in, which the script
    finds from its own place (so the tree moved as a whole still runs it); every path relative to that directory.
    (path, how many commands)."""
    up = os.path.relpath(os.getcwd(), r.spec.out.resolve())
    lines = ["#!/bin/sh", f"# Every command behind study {r.spec.name}'s report: each row's test metrics from its "
             "runs' model.pt (evaluate-heads) and", "# each seed again from scratch (train-heads; it scores the test "
             "split once at the end). Runnable as it is, from anywhere:", "# it changes to the directory the study "
             "ran in (relative to this file), and every path below is relative to that directory.", "set -eu",
             f'cd "$(dirname "$0")"/{shlex.quote(up)}', "",
             "# the whole study (rerunning reuses every finished run)", shlex.join(["study", here(r.spec.path)]), ""]
    for e in r.entries:
        lines += entry_commands(r, e, info) + [""]
    path = r.spec.out / COMMANDS
    write_atomically(path, "\n".join(lines))
    path.chmod(0o755)
    return path, sum(1 for line in lines if line.split(" ", 1)[0] in ("study", "evaluate-heads", "train-heads"))


def template(r: Results, info: dict[str, Any]) -> str:
    """The report's command block: the study, then one row's commands as the example of each kind."""
    e = next((e for e in r.entries if r.named(e.aux, e.k) is not None), r.entries[0])
    lines = ["# the whole study again (reuses every finished run)", shlex.join(["study", here(r.spec.path)]),
             f"# one row's test metrics from its runs' model.pt; here {show(e.aux)} at K = {e.cell.k_text}",
             shlex.join(["evaluate-heads", *map(here, e.runs)])]
    if r.spec.selection != "cv":
        lines += [f"# one seed of that row from scratch; here seed {e.seeds[0]}", train_heads_command(e.runs[0], info)]
    return "\n".join(lines)


def files_blocks(r: Results, info: dict[str, Any]) -> list[Block]:
    """Where every number comes from: the files beside the report, linked, and one example of each command."""
    commands, count = write_commands(r, info)
    out = r.spec.out

    def link(path: Path, text: str | None = None) -> str:
        rel = os.path.relpath(path, out)
        return f"[{text or rel}]({rel})"

    sweep = out / "sweep"
    items = [
        f"{link(commands)}: every command behind the tables ({count} commands: the study, and for each of the "
        f"{len(r.entries)} rows its `evaluate-heads` and a `train-heads` per seed), runnable as it is and from "
        "anywhere: it changes to the directory the study ran in, relative to its own place.",
        f"{link(sweep / 'runs.csv')}: every run trained, with its setting, seed, validation top-1 and health (no test "
        "metric); the selection: " + link(sweep / "selection.json") + ".",
        f"{link(sweep / 'summary.csv')} and {link(sweep / 'summary.md')}: the same test metrics and intervals as "
        "this report, with top-5, mean per-class accuracy and macro-F1.",
        f"{link(out / PER_CLASS)}: every class's test top-1 for each method and K, against its named baseline.",
        "Each test metric: the selected runs' `predictions.csv` (`heads.training.metrics.metrics_from_predictions_csv`), or "
        "`evaluate-heads RUN...` from their `model.pt`.",
    ]
    if r.spec.selection == "cv":
        items.append("A cross-validation final run has no `train-heads` form: rerun the study, or `sweep-heads "
                     "--selection cv` with its grid.")
    return [Block("h2", "Files and commands"), Block("list", items), Block("code", template(r, info))]
