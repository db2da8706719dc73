"""A sweep's summary from its files: test metrics of the selected settings (mean +- std over seeds), paired
differences against each method's same-network baseline and the linear probe, recomputed from the selected
runs' predictions.csv -> summary.csv and summary.md."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional

import numpy as np

from pipeline.errors import PipelineError
from pipeline.files import created_atomically, write_atomically

from . import artifacts
from .health import verdict
from .metrics import METRIC_LABELS, metrics_from_predictions_csv
from .options import BASELINE_OF, CONDITIONS
from .selection import SETTING_SELECTION_RULE, condition_label, condition_of, condition_sort_key
from .stats import Interval, mean_std, paired_bootstrap, t_interval


SUMMARY_METRICS = ("top1", "top5", "mean_per_class_acc", "macro_f1")


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(image_id, correct) of a run's predictions.csv."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return (np.array([int(r["image_id"]) for r in rows]),
            np.array([int(r["pred"]) == int(r["label"]) for r in rows], dtype=float))


def paired_difference(sweep_dir: Path, runs_a: dict[int, str], runs_b: dict[int, str]) -> Interval | None:
    """Test top-1 of a minus b over the seeds both have; t over seeds, or a bootstrap with one seed."""
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        return None
    correct = {}
    for s in seeds:
        ida, ca = read_predictions(sweep_dir / runs_a[s] / "predictions.csv")
        idb, cb = read_predictions(sweep_dir / runs_b[s] / "predictions.csv")
        if not np.array_equal(ida, idb):
            raise PipelineError(f"{sweep_dir}: runs {runs_a[s]} and {runs_b[s]} were scored on different test rows")
        correct[s] = (ca, cb)
    if len(seeds) == 1:
        return paired_bootstrap(*correct[seeds[0]], seed=0)
    return t_interval([ca.mean() - cb.mean() for ca, cb in correct.values()])


def comparisons(auxes: list[str]) -> list[tuple[str, str, str]]:
    """(method, baseline, why) pairs: each method against its same-network baseline, and against the linear probe."""
    pairs = []
    for aux in auxes:
        base = BASELINE_OF.get(aux)
        if base in auxes:
            pairs.append((aux, base, "same network, cross-entropy only"))
        if aux != "linear" and "linear" in auxes:
            pairs.append((aux, "linear", "linear probe"))
    return pairs


def summarize(sweep_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """summary.csv rows and summary.md, recomputed from selection.json and the selected runs' predictions.csv."""
    selection = artifacts.read_json(sweep_dir / "selection.json")
    info = artifacts.read_json(sweep_dir / "sweep.json")
    order = {a: i for i, a in enumerate(info["auxes"])}
    entries = sorted(selection["selected"], key=lambda e: (condition_sort_key(condition_of(e)), order[e["aux"]]))
    rows: list[dict[str, Any]] = []
    for e in entries:
        per_seed = {seed: metrics_from_predictions_csv(sweep_dir / run / "predictions.csv")
                    for seed, run in zip(e["seeds"], e["runs"])}
        row: dict[str, Any] = {"aux": e["aux"], **{c: e[c] for c in CONDITIONS}, "setting": e["setting"],
                               "n": len(per_seed), "seeds": " ".join(map(str, sorted(per_seed))),
                               "health": verdict(e.get("health") or [])}
        if e.get("selection") == "cv":  # label-efficiency bookkeeping: K labels per class, no validation labels
            row.update({k: e[k] for k in CV_SUMMARY_KEYS})
        for m in SUMMARY_METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = mean_std([r[m] for r in per_seed.values()])
        row["_top1"] = {s: r["top1"] for s, r in per_seed.items()}
        rows.append(row)
    by_key = {(e["aux"], condition_of(e)): e for e in entries}
    diffs: list[Diff] = []
    for cond in dict.fromkeys(condition_of(e) for e in entries):
        present = [a for a in info["auxes"] if (a, cond) in by_key]
        for a, b, why in comparisons(present):
            ea, eb = by_key[a, cond], by_key[b, cond]
            iv = paired_difference(sweep_dir, dict(zip(ea["seeds"], ea["runs"])), dict(zip(eb["seeds"], eb["runs"])))
            diffs.append((cond, a, b, why, iv))
    for row in rows:
        cond = tuple(str(row[c]) for c in CONDITIONS)
        for c, a, b, why, iv in diffs:
            if a != row["aux"] or c != cond or iv is None:
                continue
            prefix = "vs_linear" if b == "linear" else "vs_baseline"
            if prefix == "vs_baseline":
                row["baseline"] = b
            row[f"{prefix}_top1_diff"], row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"] = iv.mean, iv.low, iv.high
            row[f"{prefix}_interval"] = iv.method
    markdown = summary_markdown(info, entries, rows, diffs)
    for row in rows:
        row.pop("_top1")
    return rows, markdown


def _pm(row: dict[str, Any], m: str) -> str:
    return f"{100 * row[f'{m}_mean']:.2f} ± {100 * row[f'{m}_std']:.2f}"


Diff = tuple[tuple[str, ...], str, str, str, Optional[Interval]]


def _header_lines(info: dict[str, Any], several: bool) -> list[str]:
    """Title, untrained note, caches, seeds and the selection rule."""
    ident = info["identity"]
    lines = [f"# Sweep `{info['name']}`", ""]
    if info.get("untrained_note"):
        lines += [f"**{info['untrained_note']}**", ""]
    validation = (f"--val-per-class {ident['val_per_class']}" if ident.get("val_per_class")
                  else f"--val-fraction {ident['val_fraction']} of each class")
    lines += [f"Caches: train `{ident['train_cache']['path']}` ({ident['train_cache']['config_hash']}), "
              f"test `{ident['test_cache']['path']}` ({ident['test_cache']['config_hash']}). "
              f"Seeds: {', '.join(map(str, ident['seeds']))}.", ""]
    if (ident.get("selection") or {}).get("selection") == "cv":
        from .cv import CV_SELECTION_RULE

        folds = ident["selection"].get("cv_folds") or "min(K, 5)"
        return lines + [f"**Selection by cross-validation within the K labelled rows** ({folds} folds): "
                        f"{CV_SELECTION_RULE}. A point at K used K labels per class and no more (the rows "
                        f"{validation} carves were left out of training and selection).", ""]
    return lines + [f"**Selection used validation only**: {SETTING_SELECTION_RULE} (validation: {validation}"
                    f"{'; selected separately for each --labels-per-class' if several else ''}).", ""] + _search_lines(info)


def _search_lines(info: dict[str, Any]) -> list[str]:
    """How the grid was searched, when not in full (--search halving)."""
    search = info.get("search") or {}
    if search.get("search") != "halving":
        return []
    return [f"**Search: successive halving** (eta {search.get('halving_eta')}, {search.get('halving_rungs')} rungs; "
            "heads.search): settings were ranked by mean validation top-1 over seeds after a shorter budget of their "
            "full schedule and the worse ones stopped (runs.csv `stopped_at_epoch`); stopped settings were not "
            "eligible, and the survivors trained the full budget.", ""]


def setting_text(info: dict[str, Any], label: str, hide: tuple[str, ...] = ("labels-per-class",)) -> str:
    """'aux-weight=0.1, lr=0.03' or 'defaults': the options a setting's run names carry, as sweep.json recorded
    them when the plan was made (never parsed out of the name), but the `hide` ones (K has its own column)."""
    named = ((info.get("settings") or {}).get(label) or {}).get("named", [])
    return ", ".join(p for p in named if p.split("=", 1)[0] not in hide) or "defaults"


def _metrics_table(info: dict[str, Any], entries: list[dict[str, Any]], rows: list[dict[str, Any]],
                   several: bool) -> list[str]:
    """Test metrics (mean ± std over seeds) at each selected setting."""
    lines = ["## Test metrics at the selected settings (%, mean ± std over seeds)", "",
             "| method | " + ("labels per class | " if several else "") + "selected setting | n | "
             + " | ".join(METRIC_LABELS[m] for m in SUMMARY_METRICS) + " |",
             "|---|" + ("---|" if several else "") + "---|---|" + "---|" * len(SUMMARY_METRICS)]
    for row, e in zip(rows, entries):
        setting = setting_text(info, row["setting"])
        score = (f"cv {100 * e['val_top1_mean']:.2f} ± {100 * e['val_top1_std']:.2f} at {e['selected_epochs']} "
                 f"epochs, {e['cv_folds']} folds" if e.get("selection") == "cv" else
                 f"val {100 * e['val_top1_mean']:.2f} ± {100 * e['val_top1_std']:.2f}")
        method = row["aux"] if row["health"] == "ok" else f"{row['aux']} **(did not learn: {row['health']})**"
        lines.append(f"| {method} | " + (f"{e['labels_per_class']} | " if several else "")
                     + f"{setting} ({score}, best of {e['candidates']}) | {row['n']} | "
                     + " | ".join(_pm(row, m) for m in SUMMARY_METRICS) + " |")
    if any(r["health"] != "ok" for r in rows):
        lines += ["", "A method marked *did not learn* had no setting whose every run learned (heads.health: "
                  "training accuracy within chance, a loss that grew, or most ReLU units dead): its numbers measure "
                  "a failed training, not the method, and no difference below is read as its effect."]
    return lines


def _differences_table(diffs: list[Diff], several: bool, health: dict[tuple[str, tuple[str, ...]], str]) -> list[str]:
    """Paired differences in test top-1 against each method's baseline (and the linear probe); none is shown as
    an effect when either side did not learn (`health`: (aux, condition) -> heads.health.verdict)."""
    lines = ["", "## Paired differences in test top-1 (same seed: same validation split, labelled rows and "
             "initialisation)", ""]
    if not diffs:
        return lines + ["No method here has its baseline in the sweep (pirl pairs with none, dcl with dcl-none; "
                        "add them or linear to --aux)."]
    lines += ["| method | " + ("labels per class | " if several else "") + "compared with | Δ top-1 (points) | "
              "95% interval | interval from |", "|---|" + ("---|" if several else "") + "---|---|---|---|"]
    for cond, a, b, why, iv in diffs:
        k = f"{cond[0]} | " if several else ""
        sick = [m for m in (a, b) if health.get((m, cond), "ok") != "ok"]
        if sick:
            lines.append(f"| {a} | {k}{b} ({why}) | – | – | not an effect: {' and '.join(sick)} did not learn |")
        elif iv is None:
            lines.append(f"| {a} | {k}{b} ({why}) | – | – | no seed in common |")
        else:
            lines.append(f"| {a} | {k}{b} ({why}) | {100 * iv.mean:+.2f} | [{100 * iv.low:+.2f}, "
                         f"{100 * iv.high:+.2f}] | {iv.method} |")
    return lines + ["", "An interval that contains 0 does not show a difference. A t interval over seeds measures "
                    "how much the difference moves with the seed on this test set; a bootstrap over test images "
                    "(one seed) measures the test set's sampling noise only."]


def _label_efficiency_table(info: dict[str, Any], rows: list[dict[str, Any]], conds: list[tuple[str, ...]]) -> list[str]:
    """Test top-1 of each method against labels per class."""
    order = sorted(conds, key=condition_sort_key)
    auxes = [a for a in info["auxes"] if any(r["aux"] == a for r in rows)]
    lines = ["", "## Label efficiency: test top-1 (%, mean ± std over seeds) against labels per class", "",
             "| method | " + " | ".join(c[0] for c in order) + " |", "|---|" + "---|" * len(order)]
    for aux in auxes:
        cells = []
        for cond in order:
            row = next((r for r in rows if r["aux"] == aux and (str(r["labels_per_class"]),) == cond), None)
            cells.append(_pm(row, "top1") if row else "–")
        lines.append(f"| {aux} | " + " | ".join(cells) + " |")
    return lines


def summary_markdown(info: dict[str, Any], entries: list[dict[str, Any]], rows: list[dict[str, Any]],
                     diffs: list[Diff]) -> str:
    """summary.md: header, test metrics, paired differences, label efficiency, selections that had none."""
    conds = list(dict.fromkeys(condition_of(e) for e in entries))
    several = len(conds) > 1
    health = {(e["aux"], condition_of(e)): verdict(e.get("health") or []) for e in entries}
    lines = (_header_lines(info, several) + _metrics_table(info, entries, rows, several)
             + _differences_table(diffs, several, health))
    if any(e.get("selection") == "cv" for e in entries):  # cv: no validation split; the seed sets the folds
        lines = [line.replace("same validation split, labelled rows", "same folds, labelled rows") for line in lines]
    if several:
        lines += _label_efficiency_table(info, rows, conds)
    selected = {(e["aux"], condition_of(e)) for e in entries}
    missing = [f"{a} ({condition_label(c)})" for a in info["auxes"] for c in conds if (a, c) not in selected]
    if missing:
        lines += ["", f"No eligible setting (every setting had a diverged seed): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


CV_SUMMARY_KEYS = ("selection", "cv_folds", "selected_epochs", "labels_used_per_class")  # summary.csv, --selection cv


def write_summary(sweep_dir: Path) -> tuple[list[dict[str, Any]], str]:
    rows, markdown = summarize(sweep_dir)
    keys = ["aux", *CONDITIONS, "setting", "n", "seeds", "health"]
    keys += [f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "std")]
    keys += ["baseline"] + [f"{p}_{k}" for p in ("vs_baseline", "vs_linear")
                            for k in ("top1_diff", "ci_low", "ci_high", "interval")]
    keys += list(CV_SUMMARY_KEYS) if any(r.get("selection") == "cv" for r in rows) else []
    with created_atomically(sweep_dir / "summary.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    write_atomically(sweep_dir / "summary.md", markdown)
    return rows, markdown
