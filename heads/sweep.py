"""`sweep-heads`: a grid of settings x seeds, selection on validation only, the test split scored once.

    grid       for each aux choice, the cross product of the values of the options that apply to it
    runs       one run_experiment per (setting, seed), test split NOT scored -> runs.csv
    selection  per aux choice, the setting with the highest mean validation top-1 over seeds
               (ties: lower mean validation loss; then grid order) -> selection.json
    test       only the selected settings' runs are scored on the test split, after selecting
    summary    test metrics mean +- std over seeds and paired differences against each method's
               same-network baseline (and the linear probe), recomputed from predictions.csv
               -> summary.csv, summary.md, sweep.png

Rerunning the same command resumes: finished runs are skipped, interrupted (.partial) ones redone.

The command is a sequence of public steps that a study (or a search strategy, or workers) can call:
plan_sweep(options) -> SweepPlan (its .runs: PlannedRun setting, seed, run_dir, options), record_plan,
run_planned(runs, caches, ...) (train_planned_run trains one), select(runs.csv rows), score_selected,
write_summary(sweep_dir).

--selection cv (heads.cv) replaces the runs and the selection: plan.runs are each (setting, seed)'s fold runs
(heads.cv.fold_runs), train_planned_run sends them to heads.cv.run_cv_experiment, and select_cv_and_finish
selects on the folds and trains the final runs (all K labelled rows, the selected epochs) that score_selected
then scores on the test split, once.
"""

from __future__ import annotations

import csv
import itertools
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import click
import numpy as np

from pipeline.diff import diff_keys
from pipeline.errors import PipelineError
from pipeline.files import created_atomically, write_atomically

from . import artifacts, rungs
from .health import learned, run_health, state_of, verdict
from .metrics import METRIC_LABELS, metrics_from_predictions_csv
from .options import (AUX_CHOICES, BASELINE_OF, CONDITIONS, EXPERIMENT_OPTIONS, OPTIONS_BY_NAME, Option,
                      applicable)
from .stats import Interval, mean_std, paired_bootstrap, t_interval

SUMMARY_METRICS = ("top1", "top5", "mean_per_class_acc", "macro_f1")
DEFAULT_AUX = ("none", "pirl")
SETTING_SELECTION_RULE = ("for each aux choice, the setting with the highest mean validation top-1 over seeds "
                  "(ties: lower mean validation loss, then grid order), among the settings whose every run "
                  "learned (heads.health) when there is one; validation rows are carved from the "
                  "training split per seed; the test split was scored after selection, for the selected "
                  "settings only")
SELECTION_RULE = SETTING_SELECTION_RULE  # the former name, still imported by the study


# --- the grid ---------------------------------------------------------------------------------------
def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-4' (or a mix, '0-2,7') -> distinct seeds in the order given."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        lo, sep, hi = part.partition("-")
        try:
            values = range(int(lo), int(hi) + 1) if sep and lo else [int(part)]
        except ValueError:
            raise click.BadParameter(f"expected a comma list of integers or a range like 0-4, found {text!r}",
                                     param_hint="'--seeds'") from None
        if sep and lo and int(hi) < int(lo):
            raise click.BadParameter(f"empty range {part!r}", param_hint="'--seeds'")
        seeds += [s for s in values if s not in seeds]
    if not seeds:
        raise click.BadParameter("expected at least one seed", param_hint="'--seeds'")
    return seeds


def parse_aux(values: tuple[str, ...]) -> list[str]:
    auxes: list[str] = []
    for value in values or (",".join(DEFAULT_AUX),):
        for aux in (a.strip() for a in value.split(",") if a.strip()):
            if aux not in AUX_CHOICES:
                raise click.BadParameter(f"expected a comma list of {', '.join(AUX_CHOICES)}, found {aux!r}",
                                         param_hint="'--aux'")
            if aux not in auxes:
                auxes.append(aux)
    return auxes


def _values(opt: Option, text: str) -> list[Any]:
    out: list[Any] = []
    for item in (t for t in text.split(",") if t.strip()):
        value = opt.convert(item)
        if value not in out:
            out.append(value)
    if not out:
        raise click.BadParameter(f"expected a comma list of values, found {text!r}", param_hint=f"'{opt.flag}'")
    return out


def parse_grid(auxes: list[str], raw: dict[str, tuple[str, ...]]) -> dict[str, dict[str, list[Any]]]:
    """aux -> {option: values}: every applicable option, its default unless given (AUX=list beats a plain list)."""
    grid = {aux: {o.name: [o.default] for o in applicable(aux) if o.sweepable} for aux in auxes}
    for name, occurrences in raw.items():
        opt = OPTIONS_BY_NAME[name]
        plain, scoped = None, {}
        for text in occurrences:
            aux, sep, rest = text.partition("=")
            if sep:
                aux = aux.strip()
                if aux not in auxes:
                    raise click.BadParameter(f"{text!r}: {aux!r} is not among --aux ({','.join(auxes)})",
                                             param_hint=f"'{opt.flag}'")
                if not opt.applies_to(aux):
                    raise click.BadParameter(f"{text!r}: {opt.flag} does not apply to --aux {aux}",
                                             param_hint=f"'{opt.flag}'")
                scoped[aux] = _values(opt, rest)
            else:
                plain = _values(opt, text)
        targets = [a for a in auxes if opt.applies_to(a)]
        if plain is not None and not targets:
            raise click.BadParameter(f"applies to --aux {', '.join(sorted(opt.applies or []))}, none of which is "
                                     f"among --aux {','.join(auxes)}", param_hint=f"'{opt.flag}'")
        for aux in targets:
            if aux in scoped:
                grid[aux][name] = scoped[aux]
            elif plain is not None:
                grid[aux][name] = plain
    return grid


@dataclass(frozen=True)
class Setting:
    """One point of an aux choice's grid: the values of every option that applies to it."""

    aux: str
    values: tuple[tuple[str, Any], ...]

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.values)

    def label(self, varying: list[str]) -> str:
        """'pirl_aux-weight=0.1_lr=0.03': the aux and the options that vary in its grid."""
        opts = self.options
        return "_".join([self.aux] + [f"{OPTIONS_BY_NAME[k].flag[2:]}={opts[k]}" for k in varying])


def invalid_reason(setting: Setting) -> str | None:
    """Why a combination cannot run (it is left out of the grid), or None."""
    o = setting.options
    if setting.aux == "dcl" and o.get("dcl_test_logits") == "sum" and o.get("dcl_adv") != "swap":
        return "--dcl-test-logits sum needs --dcl-adv swap"
    return None


def expand(grid: dict[str, dict[str, list[Any]]]) -> tuple[list[Setting], dict[str, list[str]], list[str]]:
    """(settings in grid order, aux -> options varying in its grid, notes on combinations left out)."""
    settings, varying, notes = [], {}, []
    for aux, options in grid.items():
        names = list(options)
        varying[aux] = [n for n in names if len(options[n]) > 1]
        skipped = 0
        for combo in itertools.product(*(options[n] for n in names)):
            setting = Setting(aux, tuple(zip(names, combo)))
            reason = invalid_reason(setting)
            if reason:
                skipped += 1
                last = reason
                continue
            settings.append(setting)
        if skipped:
            notes.append(f"--aux {aux}: {skipped} combination(s) left out of the grid ({last})")
    return settings, varying, notes


def swept_options(varying: dict[str, list[str]]) -> list[str]:
    """Options that take more than one value for some aux choice, in declaration order."""
    names = {n for v in varying.values() for n in v}
    return [o.name for o in EXPERIMENT_OPTIONS if o.name in names]


# --- running ----------------------------------------------------------------------------------------
@dataclass
class RunRow:
    aux: str
    setting: str
    options: dict[str, Any]
    seed: int
    run_dir: Path
    best_epoch: int | None
    val_top1: float | None
    val_loss: float | None
    seconds: float
    status: str  # "done" or "failed: <why>"
    stopped_at_epoch: int | None = None  # successive halving stopped this run after that epoch (never selected)
    search: str = "grid"
    cv_folds: int | None = None  # --selection cv: F, and this run's fold (1..F) or "final"
    cv_fold: str = ""
    health: str = ""  # heads.health: ok | at-chance | diverged | dead-units


def cv_fields(options: dict[str, Any]) -> dict[str, Any]:
    """RunRow's cv_folds and cv_fold from a run's options (empty for a --selection val run)."""
    if options.get("selection") != "cv":
        return {}
    return {"cv_folds": int(options["cv_folds"]), "cv_fold": str(options["cv_fold"])}


def sweep_identity(options: dict[str, Any], grid: dict, seeds: list[int], caches: Any) -> dict[str, Any]:
    """What must match for a rerun under the same --name to resume (not the device, output or verbosity)."""
    return {
        "grid": {aux: {k: list(v) for k, v in opts.items()} for aux, opts in grid.items()},
        "seeds": seeds,
        "val_fraction": options["val_fraction"],
        "val_per_class": options.get("val_per_class"),
        "standardize": options["standardize"],
        "train_cache": {"path": str(caches.train.path), "config_hash": caches.train.attrs.get("config_hash")},
        "test_cache": {"path": str(caches.test.path), "config_hash": caches.test.attrs.get("config_hash")},
        **({"selection": {"selection": "cv", "cv_folds": options.get("cv_folds")}}
           if options.get("selection") == "cv" else {}),  # a val sweep's identity is as it always was
    }


def check_resumable(sweep_dir: Path, identity: dict[str, Any]) -> None:
    saved_file = sweep_dir / "sweep.json"
    if not saved_file.is_file():
        return
    saved = artifacts.read_json(saved_file).get("identity", {})
    differ = diff_keys(saved, identity, labels=("before", "now"))
    if differ:
        what = "; ".join(differ[:4]) + (f"; and {len(differ) - 4} more" if len(differ) > 4 else "")
        raise PipelineError(f"{sweep_dir}: a sweep with different settings is already there ({what}); "
                            "rerun the same command to resume it, or choose another --name")


def read_run_row(setting: Setting, label: str, seed: int, run_dir: Path) -> RunRow:
    metrics = artifacts.read_json(run_dir / "metrics.json")
    val = metrics.get("val") or {}
    status = "done" if not metrics.get("failed") else f"failed: {metrics['failed']}"
    config = artifacts.read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    return RunRow(setting.aux, label, setting.options, seed, run_dir, metrics.get("best_epoch"), val.get("top1"),
                  val.get("loss"), float((metrics.get("timing") or {}).get("train_seconds") or 0.0), status,
                  **cv_fields(config.get("options") or {}), health=state_of(metrics))


def write_failed_run(run_dir: Path, run_options: dict[str, Any], message: str, seconds: float) -> None:
    """A run that diverged is a result of its setting: kept (so a resume skips it), never selected."""
    partial = artifacts.begin_run(run_dir)
    artifacts.write_json(partial / "config.json", {"command": "sweep-heads", "options": run_options})
    artifacts.write_json(partial / "metrics.json", {"val": None, "test": None, "failed": message,
                                                    "health": run_health([], 0, 0, failed=message),
                                                    "timing": {"train_seconds": seconds}})
    artifacts.finish_run(partial, run_dir)
    rungs.discard(run_dir)  # a failed run never continues




def write_runs_csv(path: Path, rows: list[RunRow], swept: list[str]) -> None:
    """One row per run; no test metrics. Options that do not apply to a run's aux choice are left empty;
    the conditions (labels_per_class) are always there. With --selection cv four more columns: selection, cv_folds,
    cv_fold (1..F, or "final": no validation, val_top1 empty) and labels_used_per_class (K)."""
    columns = [c for c in CONDITIONS if c not in swept] + swept
    cv = any(r.cv_fold for r in rows)
    with created_atomically(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["aux", "setting", *columns, "seed", "best_epoch", "val_top1", "val_loss", "seconds", "status",
                    "health", "search", "stopped_at_epoch", "run_dir"]
                   + (["selection", "cv_folds", "cv_fold", "labels_used_per_class"] if cv else []))
        for r in rows:
            w.writerow([r.aux, r.setting, *(r.options.get(k, "") for k in columns), r.seed,
                        "" if r.best_epoch is None else r.best_epoch,
                        "" if r.val_top1 is None else f"{r.val_top1:.6f}",
                        "" if r.val_loss is None else f"{r.val_loss:.6f}", f"{r.seconds:.3f}", r.status, r.health, r.search,
                        "" if r.stopped_at_epoch is None else r.stopped_at_epoch,
                        r.run_dir.relative_to(path.parent).as_posix()]
                       + (["cv" if r.cv_fold else "val", r.cv_folds or "", r.cv_fold,
                           r.options.get("labels_per_class", "")] if cv else []))


def read_runs_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def select(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """From runs.csv rows: for each aux choice (and each labels-per-class value), the setting with the
    highest mean validation top-1 over seeds, among the settings whose every run learned (health "ok",
    heads.health) when there is one; otherwise among all, and the entry says its runs' health.

    Ties go to the lower mean validation loss, then to the earlier setting in the file. A setting
    with a failed (diverged) seed is not eligible, nor one that successive halving stopped (its runs
    trained a shorter budget; the survivors of a group always include its best at the last rung).
    """
    by_setting: dict[tuple[str, tuple[str, ...], str], list[dict[str, str]]] = {}
    for r in rows:
        by_setting.setdefault((r["aux"], tuple(r[c] for c in CONDITIONS), r["setting"]), []).append(r)
    best: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    candidates: dict[tuple[str, tuple[str, ...]], int] = {}
    for order, ((aux, cond, setting), runs) in enumerate(by_setting.items()):
        candidates[aux, cond] = candidates.get((aux, cond), 0) + 1
        if any(r["status"] != "done" or r.get("stopped_at_epoch") for r in runs):
            continue
        top1 = [float(r["val_top1"]) for r in runs]
        loss = [float(r["val_loss"]) for r in runs]
        mean, std = mean_std(top1)
        health = [r.get("health") or "ok" for r in runs]  # runs.csv of an earlier version: no column, not judged
        key = (all(h == "ok" for h in health), mean, -float(np.mean(loss)), -order)
        if (aux, cond) not in best or key > best[aux, cond]["_key"]:
            best[aux, cond] = {"_key": key, "aux": aux, **dict(zip(CONDITIONS, cond)), "setting": setting,
                               "val_top1_mean": mean, "val_top1_std": std, "val_loss_mean": float(np.mean(loss)),
                               "n": len(runs), "seeds": [int(r["seed"]) for r in runs],
                               "runs": [r["run_dir"] for r in runs], "health": health}
    out = []
    for key, entry in best.items():
        entry.pop("_key")
        out.append({**entry, "candidates": candidates[key]})
    return out


def condition_of(entry: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(entry[c]) for c in CONDITIONS)


def condition_label(cond: tuple[str, ...]) -> str:
    return ", ".join(f"{OPTIONS_BY_NAME[c].flag} {v}" for c, v in zip(CONDITIONS, cond))


# --- the summary, from files -------------------------------------------------------------------------
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


def condition_sort_key(cond: tuple[str, ...]) -> tuple:
    """'all' after every number, numbers in increasing order."""
    return tuple((1, 0) if v == "all" else (0, int(v)) for v in cond)


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


def _metrics_table(entries: list[dict[str, Any]], rows: list[dict[str, Any]], several: bool) -> list[str]:
    """Test metrics (mean ± std over seeds) at each selected setting."""
    lines = ["## Test metrics at the selected settings (%, mean ± std over seeds)", "",
             "| method | " + ("labels per class | " if several else "") + "selected setting | n | "
             + " | ".join(METRIC_LABELS[m] for m in SUMMARY_METRICS) + " |",
             "|---|" + ("---|" if several else "") + "---|---|" + "---|" * len(SUMMARY_METRICS)]
    for row, e in zip(rows, entries):
        parts = [p for p in row["setting"][len(row["aux"]) + 1:].split("_") if p and not p.startswith("labels-per-class=")]
        setting = ", ".join(parts) or "defaults"
        score = (f"cv {100 * e['val_top1_mean']:.2f} ± {100 * e['val_top1_std']:.2f} at {e['selected_epochs']} "
                 f"epochs, {e['cv_folds']} folds" if e.get("selection") == "cv" else
                 f"val {100 * e['val_top1_mean']:.2f} ± {100 * e['val_top1_std']:.2f}")
        method = row["aux"] if row["health"] == "ok" else f"{row['aux']} **(did not learn: {row['health']})**"
        lines.append(f"| {method} | " + (f"{e['labels_per_class']} | " if several else "")
                     + f"{setting} ({score}, best of {e['candidates']}) | {row['n']} | "
                     + " | ".join(_pm(row, m) for m in SUMMARY_METRICS) + " |")
    if any(r["health"] != "ok" for r in rows):
        lines += ["", f"A method marked *did not learn* had no setting whose every run learned (heads.health: "
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
    lines = (_header_lines(info, several) + _metrics_table(entries, rows, several)
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


# --- the command: plan / run / select / score / report ----------------------------------------------
@dataclass(frozen=True)
class PlannedRun:
    """One run to train: its setting and seed, the options run_experiment gets, and where it writes."""

    setting: Setting
    label: str  # the setting's name in runs.csv ('pirl_aux-weight=0.1')
    seed: int
    run_dir: Path
    options: dict[str, Any]


@dataclass
class SweepPlan:
    """The parsed grid and the list of runs to train, in order (seed-major, then grid order)."""

    name: str
    sweep_dir: Path
    auxes: list[str]
    seeds: list[int]
    grid: dict[str, dict[str, list[Any]]]
    settings: list[Setting]
    varying: dict[str, list[str]]
    swept: list[str]
    notes: list[str]
    runs: list[PlannedRun]


def plan_sweep(options: dict[str, Any]) -> SweepPlan:
    """Check the command's options and expand the grid into the runs to train (nothing read or written)."""
    auxes, seeds = parse_aux(options["aux"]), parse_seeds(options["seeds"])
    raw = {o.name: options[o.name] for o in EXPERIMENT_OPTIONS if o.sweepable and options[o.name]}
    grid = parse_grid(auxes, raw)
    settings, varying, notes = expand(grid)
    cv = check_selection(options, grid)
    if not cv and options["val_fraction"] <= 0 and not options["val_per_class"]:
        raise PipelineError("--val-fraction 0: a sweep selects on validation rows; give a fraction in (0, 1) "
                            "or --val-per-class M")
    name = options["name"] or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    sweep_dir = Path(options["out"]) / name
    fixed = {o.name: options[o.name] for o in EXPERIMENT_OPTIONS if not o.sweepable}
    runs = []
    for seed in seeds:
        for setting in settings:
            label = setting.label(varying[setting.aux])
            run_options = {"command": "sweep-heads", "aux": setting.aux, "seed": seed,
                           "standardize": options["standardize"], **fixed, **setting.options}
            runs.append(PlannedRun(setting, label, seed, sweep_dir / "runs" / f"{label}_seed={seed}", run_options))
    if cv:  # each (setting, seed) as its fold runs; the final runs are planned after selection (heads.cv)
        from .cv import fold_runs

        runs = fold_runs(runs, options.get("cv_folds"))
    return SweepPlan(name, sweep_dir, auxes, seeds, grid, settings, varying, swept_options(varying), notes, runs)


def check_selection(options: dict[str, Any], grid: dict[str, dict[str, list[Any]]]) -> bool:
    """--selection cv's conditions (heads.cv.check_cv), one line each; whether the sweep selects by cv."""
    if options.get("selection", "val") != "cv":
        if options.get("cv_folds"):
            raise PipelineError("--cv-folds: applies to --selection cv only")
        return False
    from .cv import check_cv

    ks = [k for opts in grid.values() for k in opts.get("labels_per_class", ["all"])]
    check_cv(ks, options.get("cv_folds"), options.get("search", "grid"))
    return True


def record_plan(options: dict[str, Any], plan: SweepPlan, caches: Any, log: Callable[[str], None]) -> SweepPlan:
    """Check that the sweep directory may be written (or resumed) and record sweep.json; the planned runs."""
    identity = sweep_identity(options, plan.grid, plan.seeds, caches)
    check_resumable(plan.sweep_dir, identity)
    (plan.sweep_dir / "runs").mkdir(parents=True, exist_ok=True)
    untrained = artifacts.weights_note(True, caches.train.attrs.get("backbone_weights")) if caches.train.untrained else ""
    artifacts.write_json(plan.sweep_dir / "sweep.json", {
        "name": plan.name, "command": "sweep-heads " + " ".join(sys.argv[1:]), "auxes": plan.auxes,
        "identity": identity, "swept": plan.swept, "keep_weights": options["keep_weights"],
        "search": {k: options[k] for k in ("search", "halving_eta", "halving_rungs") if options.get(k)},
        "selection": {k: options.get(k) for k in ("selection", "cv_folds")}, "untrained_note": untrained})
    for note in plan.notes:
        log(f"note: {note}")
    folds = " (cv fold runs; the final runs come after selection)" if options.get("selection") == "cv" else ""
    log(f"sweep-heads {plan.name}: {len(plan.settings)} settings x {len(plan.seeds)} seeds = {len(plan.runs)} runs"
        f"{folds} "
        f"({', '.join(f'{a}: {sum(s.aux == a for s in plan.settings)}' for a in plan.auxes)}) -> {plan.sweep_dir}")
    return plan


def train_planned_run(run: PlannedRun, caches: Any, progress: bool, log: Callable[[str], None]) -> tuple[RunRow, str]:
    """Train one planned run (validation only, no test); a diverged run is recorded as failed. (row, message)."""
    from .train import Diverged

    t = time.time()
    try:
        result = train_run(caches, run.options, run.run_dir, progress, log)
    except Diverged as e:
        write_failed_run(run.run_dir, run.options, str(e), time.time() - t)
        return read_run_row(run.setting, run.label, run.seed, run.run_dir), str(e)
    val = result.val or {}
    row = RunRow(run.setting.aux, run.label, run.setting.options, run.seed, run.run_dir, result.best_epoch,
                 val.get("top1"), val.get("loss"), result.train_seconds, "done", **cv_fields(run.options),
                 health=result.health)
    if not val:  # a cross-validation final run: no validation rows, the epoch count chosen on the folds
        return row, f"trained {result.best_epoch} epochs, no validation ({result.train_seconds:.1f} s)"
    return row, (f"best epoch {result.best_epoch}/{result.epochs}, val top-1 {100 * val['top1']:.2f}% "
                 f"({result.train_seconds:.1f} s)")


def train_run(caches: Any, options: dict[str, Any], run_dir: Path, progress: bool = False,
              log: Callable[[str], None] | None = None) -> Any:
    """The one training step of a sweep's run, test not scored: run_experiment, or heads.cv's for a fold or final
    run of --selection cv (its rows differ); the RunResult."""
    if options.get("selection") == "cv":
        from .cv import run_cv_experiment

        return run_cv_experiment(caches, options, run_dir, progress, log)
    from .experiment import run_experiment

    return run_experiment(caches, options, run_dir, score_test=False, progress=progress, log=log)


def run_planned(runs: list[PlannedRun], caches: Any, progress: bool, log: Callable[[str], None]) -> list[RunRow]:
    """Train the planned runs not finished yet, in order; one RunRow per planned run (finished ones read back)."""
    rows: list[RunRow] = []
    said: set[str] = set()

    def once(message: str) -> None:  # the same note for every aux choice of a seed: say it once
        if message not in said:
            said.add(message)
            log(message)

    from .bank import banks_of, train_bank

    banked: dict[Path, str] = {}  # linear/none settings differing only in lr / weight decay: one pass per bank
    for bank in banks_of(runs)[0]:
        trained = train_bank(caches, bank, progress, once,
                             lambda r, message, s: write_failed_run(r.run_dir, r.options, message, s))
        banked.update({run.run_dir: message for run, message in trained})
    for k, run in enumerate(runs, 1):
        tag = f"[{k:{len(str(len(runs)))}d}/{len(runs)}] {run.label} seed={run.seed}"
        if run.run_dir in banked:
            rows.append(read_run_row(run.setting, run.label, run.seed, run.run_dir))
            log(f"{tag}: {banked[run.run_dir]}")
            continue
        if artifacts.is_complete(run.run_dir):
            rows.append(read_run_row(run.setting, run.label, run.seed, run.run_dir))
            log(f"{tag}: done earlier, skipped")
            continue
        row, message = train_planned_run(run, caches, progress, once)
        rows.append(row)
        log(f"{tag}: {message}")
    return rows


def in_process_executor(caches: Any, progress: bool, log: Callable[[str], None]) -> Callable[[list[PlannedRun]], None]:
    """execute(runs): train the planned runs not finished yet, here, one after another (results stay in files)."""
    def execute(runs: list[PlannedRun]) -> None:
        run_planned(runs, caches, progress, log)

    return execute


def search_runs(plan: SweepPlan, options: dict[str, Any], execute: Callable[[list[PlannedRun]], None],
                log: Callable[[str], None]) -> list[RunRow]:
    """Train the plan by --search (grid: every run in full; halving: heads.search, one execute per rung)
    through `execute`; one RunRow per planned run, read back from its files (stopped runs marked)."""
    from .search import grid_search, halving_search

    if options.get("search", "grid") == "halving":
        result = halving_search(plan.runs, execute, options["halving_eta"], options["halving_rungs"], log)
    else:
        result = grid_search(plan.runs, execute)
    return [replace(read_run_row(r.setting, r.label, r.seed, r.run_dir), search=result.search,
                    stopped_at_epoch=result.stopped_at.get(r.run_dir), **cv_fields(r.options)) for r in result.runs]


def select_and_record(sweep_dir: Path, auxes: list[str]) -> list[dict[str, Any]]:
    """`select` from runs.csv alone, written to selection.json."""
    selected = select(read_runs_csv(sweep_dir / "runs.csv"))
    artifacts.write_json(sweep_dir / "selection.json", {"rule": SETTING_SELECTION_RULE, "auxes": auxes,
                                                        "conditions": CONDITIONS, "selected": selected})
    return selected


def select_cv_and_finish(sweep_dir: Path, auxes: list[str], runs: list[PlannedRun], rows: list[RunRow],
                         swept: list[str], execute: Callable[[list[PlannedRun]], None],
                         log: Callable[[str], None]) -> tuple[list[dict[str, Any]], list[RunRow]]:
    """--selection cv, after the fold `runs` (heads.cv.fold_runs) have trained and `rows` were read back: select on
    the folds, train the final runs through `execute`, write selection.json and runs.csv (fold and final rows);
    (selected entries, rows). select_and_record's counterpart; score_selected and write_summary follow as usual."""
    from .cv import select_and_train_finals

    failed = {r.run_dir for r in rows if r.status != "done"}
    selected = select_and_train_finals(sweep_dir, auxes, runs, failed, execute, log)
    by_dir = {run.run_dir: run for run in runs}
    rows = [r for r in rows if r.cv_fold != "final"]
    for run_dir in (sweep_dir / rel for e in selected for rel in e["runs"]):
        fold = by_dir[run_dir.with_name(run_dir.name.rsplit("_final_epochs=", 1)[0] + "_fold=1")]
        rows.append(read_run_row(fold.setting, fold.label, fold.seed, run_dir))
    write_runs_csv(sweep_dir / "runs.csv", rows, swept)
    return selected, rows


def score_selected(sweep_dir: Path, selected: list[dict[str, Any]], caches: Any, progress: bool = False,
                   data_root: str | None = None) -> None:
    """The test split, once, for the selected runs only (retrained first if their weights were pruned)."""
    from .experiment import score_saved_run

    for entry in selected:
        for rel in entry["runs"]:
            run = sweep_dir / rel
            if artifacts.read_json(run / "metrics.json").get("test"):
                continue
            if not (run / "model.pt").is_file():  # weights pruned by an earlier pass: retrain (deterministic)
                config = artifacts.read_json(run / "config.json")
                shutil.rmtree(run)
                train_run(caches, config["options"], run, progress)
            score_saved_run(caches, run, data_root)


def prune_weights(sweep_dir: Path, selected: list[dict[str, Any]], rows: list[RunRow]) -> None:
    """--keep-weights selected: delete model.pt of every run that was not selected."""
    keep = {sweep_dir / rel for entry in selected for rel in entry["runs"]}
    for r in rows:
        if r.run_dir not in keep and (r.run_dir / "model.pt").is_file():
            (r.run_dir / "model.pt").unlink()


def report_sweep(plan: SweepPlan, selected: list[dict[str, Any]]) -> str:
    """summary.csv, summary.md and the figures, from the sweep's files; the summary's markdown."""
    from .plots import plot_labels, plot_sweep

    summary, markdown = write_summary(plan.sweep_dir)
    runs = [r for r in read_runs_csv(plan.sweep_dir / "runs.csv") if r.get("cv_fold") != "final"]
    plot_sweep(plan.sweep_dir / "sweep.png", runs, selected, plan.grid, plan.swept, summary, plan.sweep_dir)
    if len({condition_of(e) for e in selected}) > 1:
        plot_labels(plan.sweep_dir / "labels.png", summary, plan.auxes, plan.sweep_dir)
    return markdown


def run_sweep_command(options: dict[str, Any], progress: bool, echo: Callable[..., None],
                      launch: Callable[..., Callable[[list[PlannedRun]], None]] | None = None) -> Path:
    """sweep-heads: plan the grid, train every (setting, seed), select, score the selection, summarise.
    `launch(options, plan, caches, progress, log)` gives the runs' executor (heads.workers.executor_for for
    --launcher, passed in by the command); without it the runs train in this process."""
    from .experiment import Caches, device_of

    started = time.time()
    plan = plan_sweep(options)
    artifacts.check_writable(plan.sweep_dir, "--out")
    device = device_of(options["device"])
    log = lambda m: echo(m, err=True)  # noqa: E731
    caches = Caches.load(options["train"], options["test"], plan.auxes, device, log=log,
                         maps_in_memory=options.get("maps_in_memory", "auto"))
    if options.get("selection") == "cv":
        from .cv import check_folds_fit

        check_folds_fit(plan.runs, caches.train)
    record_plan(options, plan, caches, log)
    execute = launch(options, plan, caches, progress, log) if launch else in_process_executor(caches, progress, log)
    rows = search_runs(plan, options, execute, log)  # --search grid|halving: execute(runs) once per rung
    write_runs_csv(plan.sweep_dir / "runs.csv", rows, plan.swept)
    if options.get("selection") == "cv":  # select on the folds, then train the final runs (heads.cv)
        selected, rows = select_cv_and_finish(plan.sweep_dir, plan.auxes, plan.runs, rows, plan.swept, execute, log)
    else:
        selected = select_and_record(plan.sweep_dir, plan.auxes)
    score_selected(plan.sweep_dir, selected, caches, progress, options["data_root"])
    if options["keep_weights"] == "selected":
        prune_weights(plan.sweep_dir, selected, rows)
    markdown = report_sweep(plan, selected)
    echo(markdown)
    echo(f"sweep directory: {plan.sweep_dir} ({len(rows)} runs; {time.time() - started:.1f} s wall, "
         f"{sum(r.seconds for r in rows):.1f} s of training in runs.csv)")
    return plan.sweep_dir
