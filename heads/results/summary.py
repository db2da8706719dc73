"""A sweep's summary from its files: test metrics of the selected settings (mean +- std over seeds), paired
differences against each method's same-network baseline and the linear probe, recomputed from the selected
runs' predictions.csv -> summary.csv and summary.md.

Every interval is of one kind (heads.results.stats: `paired_interval`, `mean_interval`): the one sweep.json records
under "interval", else the one a caller names (a study passes its spec's), else the hierarchical bootstrap, the
default of a study spec, so a study's report and its sweep's summary print the same intervals.

Each paired difference also states its power (heads.results.stats.power_of: the minimum detectable effect from the
seed-to-seed spread, and the seeds a target effect needs: the one a study passes, else sweep.json's
"target_effect", else heads.results.stats.DEFAULT_TARGET_EFFECT points); every selected setting at the edge of its
grid is named (heads.results.edges); the selected runs' health is stated even when every run learned."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np

from pipeline.errors import PipelineError
from pipeline.files import created_atomically, write_atomically

from heads.training import artifacts
from heads.training.health import verdict, verdict_learned
from heads.training.metrics import METRIC_LABELS, metrics_from_predictions_csv
from heads.cells import K_NAME, Cell, K, k_order, k_text
from heads.options import BASELINE_OF
from heads.results.selection import SETTING_SELECTION_RULE
from heads.results.stats import DEFAULT_INTERVAL, DEFAULT_TARGET_EFFECT, INTERVALS, MAX_SEEDS_SEARCHED, POWER_RULE, Interval, Power, interval_description, mean_interval, mean_std, paired_interval, pct, pct_diff, power_of


SUMMARY_METRICS = ("top1", "top5", "mean_per_class_acc", "macro_f1")


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(image_id, correct) of a run's predictions.csv."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return (np.array([int(r["image_id"]) for r in rows]),
            np.array([int(r["pred"]) == int(r["label"]) for r in rows], dtype=float))


def sweep_interval(info: dict[str, Any], interval: str | None = None) -> str:
    """The kind of every interval of this sweep's summary: `interval` when given, else sweep.json's, else the
    hierarchical bootstrap."""
    chosen = interval or info.get("interval") or DEFAULT_INTERVAL
    if chosen not in INTERVALS:
        raise PipelineError(f"interval: expected one of {', '.join(INTERVALS)}, found {chosen!r}")
    return chosen


def paired_correct(sweep_dir: Path, runs_a: dict[int, str], runs_b: dict[int, str]
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """(seeds, images) correctness of a and b over the seeds both have, in increasing seed order; None without a
    seed in common."""
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        return None
    a, b = [], []
    for s in seeds:
        ida, ca = read_predictions(sweep_dir / runs_a[s] / "predictions.csv")
        idb, cb = read_predictions(sweep_dir / runs_b[s] / "predictions.csv")
        if not np.array_equal(ida, idb):
            raise PipelineError(f"{sweep_dir}: runs {runs_a[s]} and {runs_b[s]} were scored on different test rows")
        a.append(ca)
        b.append(cb)
    return np.stack(a), np.stack(b)


def paired_difference(sweep_dir: Path, runs_a: dict[int, str], runs_b: dict[int, str],
                      interval: str = DEFAULT_INTERVAL) -> Interval | None:
    """Test top-1 of a minus b over the seeds both have (heads.results.stats.paired_interval of `interval`)."""
    pair = paired_correct(sweep_dir, runs_a, runs_b)
    return None if pair is None else paired_interval(*pair, method=interval)


def paired_power(correct_a: np.ndarray, correct_b: np.ndarray, target: float) -> Power:
    """heads.results.stats.power_of on the per-seed differences of test top-1 (rows: seeds, paired); `target` a fraction."""
    return power_of(np.asarray(correct_a, float).mean(1) - np.asarray(correct_b, float).mean(1), target)


def sweep_target(info: dict[str, Any], target: float | None = None) -> float:
    """The target effect in points: `target` when given, else sweep.json's, else heads.results.stats.DEFAULT_TARGET_EFFECT."""
    return float(target or info.get("target_effect") or DEFAULT_TARGET_EFFECT)


def named_baseline(aux: str, present: list[str] | set[str]) -> str | None:
    """What a method is compared with first: its same-network baseline (pirl: none, dcl: dcl-none) when present,
    else the linear probe (none and dcl-none against linear); None for the linear probe itself (the reference)."""
    base = BASELINE_OF.get(aux)
    if base in present:
        return base
    return "linear" if aux != "linear" and "linear" in present else None


def named_powers(sweep_dir: Path, target: float, ks: list[K] | None = None
                 ) -> list[tuple[str, str, Cell, Power]]:
    """(method, its named baseline, the method's cell, power) of every named comparison whose both sides learned,
    from selection.json and the selected runs' predictions.csv (`target` in points; `ks`: the K values to take, all
    when None). What a study's seed growth reads: the spread, never the effect."""
    selection = artifacts.read_json(sweep_dir / "selection.json")["selected"]
    by_cell = {Cell.of_row(e): e for e in selection}
    out = []
    for cell, e in by_cell.items():
        if ks is not None and cell.k not in ks:
            continue
        base = named_baseline(cell.method, {c.method for c in by_cell if c.k == cell.k})
        b = by_cell.get(Cell(base, cell.k)) if base else None
        if b is None or not all(verdict_learned(verdict(x.get("health") or [])) for x in (e, b)):
            continue
        pair = paired_correct(sweep_dir, dict(zip(e["seeds"], e["runs"])), dict(zip(b["seeds"], b["runs"])))
        if pair is not None:
            out.append((cell.method, base, cell, paired_power(*pair, target / 100)))
    return out


def health_line(states: list[str]) -> str:
    """'health: ok, 30 of 30 selected runs' or 'health: 28 of 30 selected runs ok; at-chance: 2' (heads.training.health's
    states of every selected run, stated even when all are fine)."""
    ok = sum(1 for s in states if s in ("ok", ""))
    if ok == len(states):
        return f"health: ok, {ok} of {len(states)} selected runs"
    bad = [s for s in states if s not in ("ok", "")]
    counts = "; ".join(f"{s}: {bad.count(s)}" for s in dict.fromkeys(bad))
    return f"health: {ok} of {len(states)} selected runs ok; {counts}"


def user_words(text: str) -> str:
    """heads' internal 'aux choice' as a reader says it: 'method'."""
    return text.replace("each aux choice", "each method").replace("aux choice", "method")


def accuracy_interval(sweep_dir: Path, entry: dict[str, Any], interval: str = DEFAULT_INTERVAL) -> Interval:
    """95% interval of one selection's mean test top-1 over its seeds (heads.results.stats.mean_interval)."""
    order = np.argsort(entry["seeds"])
    correct = [read_predictions(sweep_dir / entry["runs"][i] / "predictions.csv")[1] for i in order]
    return mean_interval(np.stack(correct), method=interval)


def run_counts(sweep_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """What the selection's first run used, from its config.json: classes, chance, labelled and validation rows,
    test images."""
    config = artifacts.read_json(sweep_dir / entry["runs"][0] / "config.json")
    rows = config.get("rows") or {}
    classes = int(config.get("num_classes") or 0)
    return {"classes": classes, "chance_top1": 1 / classes if classes else float("nan"),
            "labelled_rows": rows.get("labelled", ""), "val_rows": rows.get("val", ""), "test_images": rows.get("test", "")}


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


def summarize(sweep_dir: Path, interval: str | None = None, target: float | None = None
              ) -> tuple[list[dict[str, Any]], str]:
    """summary.csv rows and summary.md, recomputed from selection.json and the selected runs' predictions.csv;
    every interval of the kind `sweep_interval` gives; power against `target` points (sweep_target)."""
    selection = artifacts.read_json(sweep_dir / "selection.json")
    info = artifacts.read_json(sweep_dir / "sweep.json")
    interval = sweep_interval(info, interval)
    target = sweep_target(info, target)
    entries = sorted(selection["selected"], key=lambda e: Cell.of_row(e).order(info["auxes"]))
    rows: list[dict[str, Any]] = []
    for e in entries:
        per_seed = {seed: metrics_from_predictions_csv(sweep_dir / run / "predictions.csv")
                    for seed, run in zip(e["seeds"], e["runs"])}
        row: dict[str, Any] = {**Cell.of_row(e).row(), "setting": e["setting"],
                               "n": len(per_seed), "seeds": " ".join(map(str, sorted(per_seed))),
                               "health": verdict(e.get("health") or [])}
        if e.get("selection") == "cv":  # label-efficiency bookkeeping: K labels per class, no validation labels
            row.update({k: e[k] for k in CV_SUMMARY_KEYS})
        for m in SUMMARY_METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = mean_std([r[m] for r in per_seed.values()])
        band = accuracy_interval(sweep_dir, e, interval)
        row["top1_ci_low"], row["top1_ci_high"], row["top1_interval"] = band.low, band.high, band.method
        row["interval"] = interval
        row["target_effect"] = target
        row.update(run_counts(sweep_dir, e))
        row["_top1"] = {s: r["top1"] for s, r in per_seed.items()}
        rows.append(row)
    by_cell = {Cell.of_row(e): e for e in entries}
    diffs: list[Diff] = []
    for k in dict.fromkeys(c.k for c in by_cell):
        present = [a for a in info["auxes"] if Cell(a, k) in by_cell]
        for a, b, why in comparisons(present):
            ea, eb = by_cell[Cell(a, k)], by_cell[Cell(b, k)]
            pair = paired_correct(sweep_dir, dict(zip(ea["seeds"], ea["runs"])), dict(zip(eb["seeds"], eb["runs"])))
            iv = None if pair is None else paired_interval(*pair, method=interval)
            power = None if pair is None else paired_power(*pair, target / 100)
            same = sorted(ea["seeds"]) == sorted(eb["seeds"])
            diffs.append(Diff(k, a, b, why, iv, power, same))
    health = {cell: verdict(e.get("health") or []) for cell, e in by_cell.items()}
    for row in rows:
        cell = Cell.of_row(row)
        for k, a, b, why, iv, power, _same in diffs:
            if Cell(a, k) != cell or iv is None:
                continue
            prefix = "vs_linear" if b == "linear" else "vs_baseline"
            if prefix == "vs_baseline":
                row["baseline"] = b
            row[f"{prefix}_top1_diff"], row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"] = iv.mean, iv.low, iv.high
            row[f"{prefix}_interval"] = iv.method
            row[f"{prefix}_sd_seeds"], row[f"{prefix}_mde"] = power.s_d, power.mde
            row[f"{prefix}_seeds_needed"] = power.needed if power.needed is not None else ""
            sick = [m for m in (a, b) if not verdict_learned(health.get(Cell(m, k), "ok"))]
            if sick:  # never an effect: no interval, the reason instead
                row[f"{prefix}_ci_low"] = row[f"{prefix}_ci_high"] = float("nan")
                row[f"{prefix}_interval"] = f"not an effect: {' and '.join(sick)} did not learn"
    from heads.results.edges import edges_text, grid_edges

    edges = grid_edges(sweep_dir)
    for row in rows:
        row["grid_edges"] = edges_text(edges, Cell.of_row(row))
    markdown = summary_markdown(info, entries, rows, diffs, interval, edges, target)
    for row in rows:
        row.pop("_top1")
    return rows, markdown


def _pm(row: dict[str, Any], m: str) -> str:
    return f"{pct(row[f'{m}_mean'])} ± {pct(row[f'{m}_std'])}"


class Diff(NamedTuple):
    """One paired comparison of the summary: a minus b at one K, its interval and power."""

    k: K
    a: str
    b: str
    why: str
    iv: Optional[Interval]
    power: Optional[Power]
    same_seeds: bool = True  # both sides ran the same seeds: Δ is the difference of their printed means


def delta_text(d: Diff, rows: list[dict[str, Any]]) -> str:
    """Δ in points as the table prints it: the difference of the two printed means when both ran the same seeds
    (heads.results.stats.pct_diff), else the paired mean over the seeds both have."""
    mean = {Cell.of_row(r): r["top1_mean"] for r in rows}
    a, b = Cell(d.a, d.k), Cell(d.b, d.k)
    if d.same_seeds and a in mean and b in mean:
        return pct_diff(mean[a], mean[b])
    return pct(d.iv.mean, sign=True) + " (over the seeds both have)"


def _header_lines(info: dict[str, Any], several: bool, interval: str) -> list[str]:
    """Title, untrained note, caches, seeds, the interval and the selection rule."""
    ident = info["identity"]
    lines = [f"# Sweep `{info['name']}`", ""]
    if info.get("untrained_note"):
        lines += [f"**{info['untrained_note']}**", ""]
    validation = (f"--val-per-class {ident['val_per_class']}" if ident.get("val_per_class")
                  else f"--val-fraction {ident['val_fraction']} of each class")
    lines += [f"Caches: train `{ident['train_cache']['path']}` ({ident['train_cache']['config_hash']}), "
              f"test `{ident['test_cache']['path']}` ({ident['test_cache']['config_hash']}). "
              f"Seeds: {', '.join(map(str, ident['seeds']))}.", "",
              f"**Intervals**: 95%, {interval_description(interval)}.", ""]
    if (ident.get("selection") or {}).get("selection") == "cv":
        from heads.results.selection import CV_SELECTION_RULE

        folds = ident["selection"].get("cv_folds") or "min(K, 5)"
        return lines + [f"**Selection by cross-validation within the K labelled rows** ({folds} folds): "
                        f"{user_words(CV_SELECTION_RULE)}. A point at K used K labels per class and no more (the rows "
                        f"{validation} carves were left out of training and selection).", ""]
    return lines + [f"**Selection used validation only**: {user_words(SETTING_SELECTION_RULE)} (validation: "
                    f"{validation}"
                    f"{'; selected separately for each --labels-per-class' if several else ''}).", ""] + _search_lines(info)


def _search_lines(info: dict[str, Any]) -> list[str]:
    """How the grid was searched, when not in full (--search halving)."""
    search = info.get("search") or {}
    if search.get("search") != "halving":
        return []
    return [f"**Search: successive halving** (eta {search.get('halving_eta')}, {search.get('halving_rungs')} rungs; "
            "heads.search.halving): settings were ranked by mean validation top-1 over seeds after a shorter budget of their "
            "full schedule and the worse ones stopped (runs.csv `stopped_at_epoch`); stopped settings were not "
            "eligible, and the survivors trained the full budget.", ""]


def setting_text(info: dict[str, Any], label: str, hide: tuple[str, ...] = ("labels-per-class",)) -> str:
    """'aux-weight=0.1, lr=0.03' or 'defaults': the options a setting's run names carry, as sweep.json recorded
    them when the plan was made (never parsed out of the name), but the `hide` ones (K has its own column)."""
    named = ((info.get("settings") or {}).get(label) or {}).get("named", [])
    return ", ".join(p for p in named if p.split("=", 1)[0] not in hide) or "defaults"


def chance_line(rows: list[dict[str, Any]]) -> list[str]:
    """'Chance: 10.00% top-1 (1 of 10 classes)...': what a method that learned nothing scores."""
    classes = sorted({r["classes"] for r in rows if r["classes"]})
    if not classes:
        return []
    shown = ", ".join(f"{pct(1 / c)}% top-1 (1 of {c} classes), {pct(min(5, c) / c)}% top-5" for c in classes)
    return ["", f"Chance: {shown}; a method at chance learned nothing."]


def _metrics_table(info: dict[str, Any], entries: list[dict[str, Any]], rows: list[dict[str, Any]],
                   several: bool) -> list[str]:
    """Test metrics (mean ± std over seeds) at each selected setting, and chance."""
    lines = ["## Test metrics at the selected settings (%, mean ± std over seeds)", "",
             "| method | " + ("labels per class | " if several else "") + "selected setting | n | "
             + " | ".join(METRIC_LABELS[m] for m in SUMMARY_METRICS) + " |",
             "|---|" + ("---|" if several else "") + "---|---|" + "---|" * len(SUMMARY_METRICS)]
    for row, e in zip(rows, entries):
        setting = setting_text(info, row["setting"])
        score = (f"cv {pct(e['val_top1_mean'])} ± {pct(e['val_top1_std'])} at {e['selected_epochs']} "
                 f"epochs, {e['cv_folds']} folds" if e.get("selection") == "cv" else
                 f"val {pct(e['val_top1_mean'])} ± {pct(e['val_top1_std'])}")
        method = (row["aux"] if row["health"] == "ok" else f"{row['aux']} *({row['health']})*"
                  if verdict_learned(row["health"]) else f"{row['aux']} **(did not learn: {row['health']})**")
        lines.append(f"| {method} | " + (f"{Cell.of_row(e).k_text} | " if several else "")
                     + f"{setting} ({score}, best of {e['candidates']}) | {row['n']} | "
                     + " | ".join(_pm(row, m) for m in SUMMARY_METRICS) + " |")
    lines += chance_line(rows)
    states = [h or "ok" for e in entries for h in (e.get("health") or ["ok"] * len(e["runs"]))]
    lines += ["", f"{health_line(states)[0].upper()}{health_line(states)[1:]} (heads.training.health: each selected run's "
              "training and validation curves checked for learning)."]
    if any(not verdict_learned(r["health"]) for r in rows):
        lines += ["", "A method marked *did not learn* had no setting whose every run learned (heads.training.health: "
                  "training accuracy within chance, a loss that grew, or most ReLU units dead): its numbers measure "
                  "a failed training, not the method, and no difference below is read as its effect."]
    return lines


def power_cells(power: Power | None) -> str:
    """'4.21 | 9' : the MDE in points and the seeds the target needs, or why not."""
    if power is None or not power.computable:
        return "– (one seed: no spread) | –"
    needed = power.needed if power.needed is not None else f"> {MAX_SEEDS_SEARCHED:,}"
    return f"{pct(power.mde)} (s_d {pct(power.s_d)}, n={power.n}) | {needed}"


def _differences_table(diffs: list[Diff], several: bool, health: dict[Cell, str],
                       rows: list[dict[str, Any]], target: float = DEFAULT_TARGET_EFFECT) -> list[str]:
    """Paired differences in test top-1 against each method's baseline (and the linear probe), each with its
    power; none is shown as an effect when either side did not learn (`health`: cell ->
    heads.training.health.verdict)."""
    lines = ["", "## Paired differences in test top-1 (same seed: same validation split, labelled rows and "
             "initialisation)", ""]
    if not diffs:
        return lines + ["No method here has its baseline in the sweep (pirl pairs with none, dcl with dcl-none; "
                        "add them or linear to --aux)."]
    lines += ["| method | " + ("labels per class | " if several else "") + "compared with | Δ top-1 (points) | "
              "95% interval | interval from | MDE (points, 80% power) | seeds for "
              + f"{target:g} point{'' if target == 1 else 's'} |",
              "|---|" + ("---|" if several else "") + "---|---|---|---|---|---|"]
    for d in diffs:
        a, b, why, iv = d.a, d.b, d.why, d.iv
        k = f"{k_text(d.k)} | " if several else ""
        sick = [m for m in (a, b) if not verdict_learned(health.get(Cell(m, d.k), "ok"))]
        power = power_cells(d.power)
        if sick:
            lines.append(f"| {a} | {k}{b} ({why}) | – | – | not an effect: {' and '.join(sick)} did not learn "
                         f"| {power} |")
        elif iv is None:
            lines.append(f"| {a} | {k}{b} ({why}) | – | – | no seed in common | – | – |")
        elif not iv.computable:
            lines.append(f"| {a} | {k}{b} ({why}) | {delta_text(d, rows)} | cannot be computed | {iv.method} "
                         f"| {power} |")
        else:
            lines.append(f"| {a} | {k}{b} ({why}) | {delta_text(d, rows)} | [{pct(iv.low, sign=True)}, "
                         f"{pct(iv.high, sign=True)}] | {iv.method} | {power} |")
    return lines + ["", "An interval that contains 0 does not show a difference; it does not show that there is none "
                    "either: the MDE column says how large an effect these seeds would detect. Power: "
                    f"{POWER_RULE}. Δ is the difference of the two printed means (the same seeds ran both)."]


def _edges_lines(edges: list[Any], several: bool) -> list[str]:
    """Selected settings at the edge of their grid (heads.results.edges), or that none was."""
    if not edges:
        return ["", "No selected setting is at the edge of a numeric grid of 2 or more values (heads.results.edges)."]
    at = lambda e: f" at K = {e.cell.k_text}" if several else ""  # noqa: E731
    lead = "The best value may lie beyond the values tried (heads.results.edges; with 2 values every choice is an edge):"
    return ["", "## Selected at the edge of the grid", "", lead, ""] + [f"- {e.cell.method}{at(e)}: {e.text()}"
                                                                       for e in edges]


def _label_efficiency_table(info: dict[str, Any], rows: list[dict[str, Any]], ks: list[K]) -> list[str]:
    """Test top-1 of each method against labels per class."""
    order = sorted(ks, key=k_order)
    by_cell = {Cell.of_row(r): r for r in rows}
    auxes = [a for a in info["auxes"] if any(c.method == a for c in by_cell)]
    lines = ["", "## Label efficiency: test top-1 (%, mean ± std over seeds) against labels per class", "",
             "| method | " + " | ".join(map(k_text, order)) + " |", "|---|" + "---|" * len(order)]
    for aux in auxes:
        cells = [_pm(by_cell[Cell(aux, k)], "top1") if Cell(aux, k) in by_cell else "–" for k in order]
        lines.append(f"| {aux} | " + " | ".join(cells) + " |")
    return lines


def summary_markdown(info: dict[str, Any], entries: list[dict[str, Any]], rows: list[dict[str, Any]],
                     diffs: list[Diff], interval: str = DEFAULT_INTERVAL, edges: list[Any] = (),
                     target: float = DEFAULT_TARGET_EFFECT) -> str:
    """summary.md: header, test metrics, paired differences with their power, grid edges, label efficiency,
    selections that had none."""
    cells = [Cell.of_row(e) for e in entries]
    ks = list(dict.fromkeys(c.k for c in cells))
    several = len(ks) > 1
    health = {c: verdict(e.get("health") or []) for c, e in zip(cells, entries)}
    lines = (_header_lines(info, several, interval) + _metrics_table(info, entries, rows, several)
             + _differences_table(diffs, several, health, rows, target) + _edges_lines(list(edges), several))
    if any(e.get("selection") == "cv" for e in entries):  # cv: no validation split; the seed sets the folds
        lines = [line.replace("same validation split, labelled rows", "same folds, labelled rows") for line in lines]
    if several:
        lines += _label_efficiency_table(info, rows, ks)
    missing = [f"{a} ({Cell(a, k).flag_text})" for a in info["auxes"] for k in ks if Cell(a, k) not in cells]
    if missing:
        lines += ["", f"No eligible setting (every setting had a diverged seed): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def csv_value(v: Any) -> Any:
    """A float with 6 decimals; nan (an interval that cannot be computed) as an empty cell."""
    if isinstance(v, float):
        return "" if v != v else f"{v:.6f}"
    return v


CV_SUMMARY_KEYS = ("selection", "cv_folds", "selected_epochs", "labels_used_per_class")  # summary.csv, --selection cv


def write_summary(sweep_dir: Path, interval: str | None = None, target: float | None = None
                  ) -> tuple[list[dict[str, Any]], str]:
    """summary.csv and summary.md (summarize), each written atomically; (rows, markdown)."""
    rows, markdown = summarize(sweep_dir, interval, target)
    keys = ["aux", K_NAME, "setting", "n", "seeds", "health"]
    keys += [f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "std")]
    keys += ["interval", "top1_ci_low", "top1_ci_high", "top1_interval", "classes", "chance_top1", "labelled_rows", "val_rows",
             "test_images"]
    keys += ["baseline"] + [f"{p}_{k}" for p in ("vs_baseline", "vs_linear")
                            for k in ("top1_diff", "ci_low", "ci_high", "interval", "sd_seeds", "mde", "seeds_needed")]
    keys += ["target_effect", "grid_edges"]
    keys += list(CV_SUMMARY_KEYS) if any(r.get("selection") == "cv" for r in rows) else []
    with created_atomically(sweep_dir / "summary.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in rows:
            w.writerow({k: csv_value(v) for k, v in row.items()})
    write_atomically(sweep_dir / "summary.md", markdown)
    return rows, markdown
