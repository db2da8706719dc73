"""A study's results read once from its files: the selected entries (each run's predictions.csv), the paired
effects against each method's baselines, the accuracy bands, the rows each K used (the runs' config.json), the
flags (untrained backbone, synthetic sample). Every block of the report (study.report.write, study.report.answer,
study.report.files, study.report.figures) and the cross-dataset report (study.report.compare) reads them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heads.cells import K_NAME, Cell, K, k_order
from study.report.facts import cache_attrs, cache_labels, synthetic_note


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
    """One method at one K (its cell), at its selected setting: per-seed correctness on the same test images."""

    cell: Cell
    setting: str
    seeds: list[int]
    runs: list[Path]
    correct: np.ndarray  # (seeds, images)
    label: np.ndarray
    val_mean: float
    val_std: float
    candidates: int
    health: str = "ok"  # heads.training.health.verdict of its runs: "ok" when every run learned
    named: list[str] = field(default_factory=list)  # the options its run names carry, flag=value (sweep.json)
    run_health: list[str] = field(default_factory=list)  # each run's heads.training.health state, in seed order

    @property
    def aux(self) -> str:
        return self.cell.method

    @property
    def k(self) -> K:
        return self.cell.k

    @property
    def learned(self) -> bool:
        """Every run learned (under-trained ones included: flagged, not excluded; heads.training.health)."""
        from heads.training.health import verdict_learned

        return verdict_learned(self.health)

    @property
    def top1(self) -> tuple[float, float]:
        """(mean, std) over seeds of test top-1, fractions (heads.results.stats.mean_std, as summary.md)."""
        from heads.results.stats import mean_std

        return mean_std(self.correct.mean(1))


def load_entries(sweep_dir: Path) -> list[Entry]:
    from heads.training import artifacts
    from heads.training.health import verdict

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
        entries.append(Entry(Cell.of_row(e), e["setting"], seeds, runs,
                             np.stack([d[2] for d in data]), data[0][1], e["val_top1_mean"], e["val_top1_std"],
                             e["candidates"], verdict([e["health"][i] for i in order] if e.get("health") else []),
                             list((settings.get(e["setting"]) or {}).get("named", [])),
                             [e["health"][i] or "ok" for i in order] if e.get("health") else ["ok"] * len(runs)))
    return entries


def pct(x: float) -> str:
    """A fraction in points, 2 decimals, rounded half away from zero (heads.results.stats.pct: every percentage printed)."""
    from heads.results.stats import pct as points

    return points(x)


def diff_text(iv: Any, delta: str | None = None) -> str:
    """'+5.00 [+0.00, +11.25]' in points (`delta`: the Δ as printed, else the interval's mean); an interval that
    cannot be computed says so."""
    from heads.results.stats import pct as points

    if iv is None:
        return "–"
    delta = delta or points(iv.mean, sign=True)
    if not iv.computable:
        return f"{delta} (interval cannot be computed: t over {iv.n} seed{'s' if iv.n != 1 else ''})"
    return f"{delta} [{points(iv.low, sign=True)}, {points(iv.high, sign=True)}]"


@dataclass
class Effect:
    """top1(a) - top1(b) at one K over the seeds both have (same seed: same split, labelled rows, initialisation):
    its interval, or why none is read as an effect."""

    a: Entry
    b: Entry
    interval: Any  # heads.results.stats.Interval, or None with `note`
    note: str = ""  # "not an effect: dcl did not learn", "no seed in common"
    power: Any = None  # heads.results.stats.Power over the seeds both have (also when a side did not learn)

    @property
    def shown(self) -> bool:
        """Its 95% interval excludes 0."""
        return self.interval is not None and self.interval.excludes_zero

    @property
    def same_seeds(self) -> bool:
        return sorted(self.a.seeds) == sorted(self.b.seeds)

    def delta(self) -> str:
        """Δ in points as printed: the difference of the two printed means (heads.results.stats.pct_diff) when both ran the
        same seeds, so that a table's Δ is the difference of its own numbers; else the paired mean over the seeds
        both have."""
        from heads.results.stats import pct as points, pct_diff

        if self.same_seeds:
            return pct_diff(self.a.top1[0], self.b.top1[0])
        return points(self.interval.mean, sign=True) if self.interval is not None else "–"

    def text(self) -> str:
        return self.note or diff_text(self.interval, self.delta())


def paired(a: Entry, b: Entry, method: str) -> Any:
    """Interval of top1(a) - top1(b) over the seeds both have (heads.results.stats.paired_interval, as summary.md)."""
    from heads.results.stats import paired_interval

    common = [s for s in a.seeds if s in b.seeds]
    if not common:
        return None
    ia, ib = [a.seeds.index(s) for s in common], [b.seeds.index(s) for s in common]
    return paired_interval(a.correct[ia], b.correct[ib], method=method)


def power_between(a: Entry, b: Entry, target: float) -> Any:
    """heads.results.stats.power_of of top1(a) - top1(b) per seed, over the seeds both have (`target`: points)."""
    from heads.results.stats import power_of

    common = [s for s in a.seeds if s in b.seeds]
    diffs = [a.correct[a.seeds.index(s)].mean() - b.correct[b.seeds.index(s)].mean() for s in common]
    return power_of(diffs, target / 100)


def effect_of(a: Entry, b: Entry, method: str, target: float | None = None) -> Effect:
    """a - b; no interval when either did not learn: never an effect. Its power against `target` points
    (heads.results.stats.DEFAULT_TARGET_EFFECT when None)."""
    from heads.results.stats import DEFAULT_TARGET_EFFECT

    power = power_between(a, b, target or DEFAULT_TARGET_EFFECT)
    sick = [e.aux for e in (a, b) if not e.learned]
    if sick:
        return Effect(a, b, None, f"not an effect: {' and '.join(sick)} did not learn", power)
    iv = paired(a, b, method)
    return Effect(a, b, iv, "" if iv is not None else "no seed in common", power)


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
    against linear), None for the linear probe itself (the reference); heads.results.summary.named_baseline, one rule."""
    from heads.results.summary import named_baseline as rule

    return rule(aux, present)


def comparisons(entries: list[Entry], k: K) -> dict[str, tuple[Entry | None, Entry | None]]:
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
    """'7', or '27–30, 29.1 on average', or '≈29.1' when only the mean is known (no brackets of its own: it is
    often printed inside some)."""
    if span is None:
        return f"≈{mean:.3g}"
    low, high = span
    return f"{low}" if low == high else f"{low}–{high}, {mean:.3g} on average"


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
    from heads.training import artifacts

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
    ks: list[K]
    effects: dict[tuple[Cell, str], Effect]  # (the method's cell, the method it is against)
    bands: dict[Cell, Any]  # heads.results.stats.Interval of the cell's mean test top-1
    counts: dict[K, Counts]
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

    @property
    def run_health(self) -> list[str]:
        """heads.training.health's state of every selected run."""
        return [h for e in self.entries for h in e.run_health]

    def best(self, k: K) -> Entry | None:
        """The strongest head at K: the best mean test top-1 among the methods that learned (as printed)."""
        at = [e for e in self.entries if e.k == k and e.learned] or [e for e in self.entries if e.k == k]
        return max(at, key=lambda e: (float(pct(e.top1[0])), -self.spec.methods.index(e.aux)), default=None)

    def entry(self, aux: str, k: K) -> Entry | None:
        return next((e for e in self.entries if e.cell == Cell(aux, k)), None)

    def baseline(self, aux: str) -> str | None:
        """The method's named baseline in this study (the answer's Δ)."""
        return named_baseline(aux, self.methods)

    def effect(self, aux: str, against: str, k: K) -> Effect | None:
        """`aux` minus `against` at K, when both were selected."""
        return self.effects.get((Cell(aux, k), against))

    def named(self, aux: str, k: K) -> Effect | None:
        base = self.baseline(aux)
        return self.effect(aux, base, k) if base else None


def collect(spec: Any) -> Results:
    """Read a study's results from its sweep directory and caches (every interval of the spec's kind)."""
    from heads.training import artifacts
    from heads.results.stats import mean_interval

    sweep_dir = spec.out / "sweep"
    info = artifacts.read_json(sweep_dir / "sweep.json")
    entries = sorted(load_entries(sweep_dir), key=lambda e: e.cell.order(spec.methods))
    train_path = info["identity"]["train_cache"]["path"]
    train = cache_attrs(train_path)
    ks = sorted({e.k for e in entries}, key=k_order)
    by_cell = {e.cell: e for e in entries}
    effects: dict[tuple[Cell, str], Effect] = {}
    for k in ks:
        for aux, (own, linear) in comparisons(entries, k).items():
            for base in (own, linear):
                if base is not None:
                    effects[Cell(aux, k), base.aux] = effect_of(by_cell[Cell(aux, k)], base, spec.interval,
                                                                spec.target_effect)
    bands = {e.cell: mean_interval(e.correct, spec.interval) for e in entries}
    labels = cache_labels(train_path)
    names = list(train["class_names"])
    counts = {k: counts_at([e for e in entries if e.k == k], labels, len(names), names) for k in ks}
    return Results(spec, entries, ks, effects, bands, counts, names, str(train.get("backbone_weights", "")),
                   synthetic_note(spec.data_root))


# --- how the blocks name a setting, a K and a class ---------------------------------------------------
def setting_text(e: Any, spec: Any = None) -> str:
    """The selected setting: the options its run name carries (those off heads' defaults, as sweep.json recorded
    them), plus the value of each option the spec's grid varies for the method that the name leaves out (it was
    at its default)."""
    from heads.options import OPTIONS_BY_NAME

    parts = [p for p in e.named if p.split("=", 1)[0] != "labels-per-class"]
    named = {p.split("=", 1)[0] for p in parts}
    swept = [k for k, v in (spec.grid.get(e.aux, {}) if spec is not None else {}).items()
             if len(v) > 1 and k != K_NAME and OPTIONS_BY_NAME[k].flag[2:] not in named]
    parts += [f"{OPTIONS_BY_NAME[k].flag[2:]}={OPTIONS_BY_NAME[k].default}" for k in swept]
    return ", ".join(parts) or "defaults"


def show(aux: str) -> str:
    """A method as the report names it: 'none' is 'none (MLP)', never to be read as an empty cell."""
    return "none (MLP)" if aux == "none" else aux


def k_title(k: K, counts: Counts | None = None) -> str:
    """'K = 5', 'K = all (7)', 'K = all (121–127, 125 on average)': K with the labelled rows per class the runs
    used when it is 'all'."""
    if k is not None:
        return f"K = {k}"
    return f"K = all ({counts.labelled_text()})" if counts is not None else "K = all"


def class_display(dataset: str) -> Any:
    """How a class name is shown: CUB's and NABirds' '017.Cardinal' as 'Cardinal'; other datasets' as stored."""
    from pipeline.datasets.cub import display_name

    return display_name if dataset in ("cub", "nabirds") else (lambda name: name)
