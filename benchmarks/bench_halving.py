"""Successive halving against the full grid on synthetic caches with known structure: agreement and savings.

    .venv/bin/python benchmarks/bench_halving.py [--datasets 3] [--epochs 9] [--eta 3] [--rungs 3]

For each of `--datasets` synthetic datasets (tests.support.synthetic: Gaussian classes; dataset k has its own
noise draw and class separation 0.25 + 0.05 k), runs `sweep-heads` twice on the same caches, `--search grid`
and `--search halving`, over
--aux none,linear with a learning-rate grid (and two weight decays for linear), 2 seeds. Prints, per
dataset and method: whether halving selected the grid's setting, else whether its pick is within
validation noise of the grid's best (the grid's mean validation top-1 of halving's pick is no more than one
binomial standard error, sqrt(p (1 - p) / (validation rows x seeds)), below the grid's best), the test
top-1 of both selections, and the epochs (heads.search.halving.halving_budget, exact) and wall time each took
(after a 1-epoch warm-up sweep that pays the process's one-time import costs). Linear settings of a seed
train as a bank (heads.training.bank) in both strategies.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_model  # noqa: E402

LRS = "0.003,0.01,0.03,0.1,0.3,1"


def sweep(train: Path, test: Path, out: Path, name: str, args: argparse.Namespace, *extra: str) -> float:
    from click.testing import CliRunner

    from heads.cli import sweep_main

    argv = ["--train", str(train), "--test", str(test), "--out", str(out), "--name", name, "--data-root",
            str(out / "no-images"), "--aux", "none,linear", "--lr", LRS, "--weight-decay", "linear=1e-4,1e-2",
            "--seeds", "0,1", "--epochs", str(args.epochs), "--batch-size", "64", "--precision", "fp32", "--quiet",
            *extra]
    start = time.perf_counter()
    result = CliRunner().invoke(sweep_main, argv, catch_exceptions=False)
    if result.exit_code:
        raise SystemExit(result.output)
    return time.perf_counter() - start


def read(sweep_dir: Path) -> tuple[dict, dict, list[dict]]:
    """(selection by aux, summary by aux, runs.csv rows)."""
    selected = {e["aux"]: e for e in json.loads((sweep_dir / "selection.json").read_text())["selected"]}
    with open(sweep_dir / "summary.csv", newline="") as f:
        summary = {r["aux"]: r for r in csv.DictReader(f)}
    with open(sweep_dir / "runs.csv", newline="") as f:
        return selected, summary, list(csv.DictReader(f))


def mean_val(rows: list[dict], setting: str) -> float:
    vals = [float(r["val_top1"]) for r in rows if r["setting"] == setting]
    return sum(vals) / len(vals)


def compare(out: Path, aux: str, val_rows: int) -> tuple[str, float, float, float]:
    """(agreement, grid test top-1, halving test top-1, gap in grid validation top-1) for one method."""
    g_sel, g_sum, g_rows = read(out / "grid")
    h_sel, h_sum, _ = read(out / "halving")
    best, pick = g_sel[aux]["setting"], h_sel[aux]["setting"]
    p = mean_val(g_rows, best)
    se = math.sqrt(max(p * (1 - p), 1e-9) / (val_rows * 2))
    gap = p - mean_val(g_rows, pick)
    agree = "same" if pick == best else ("within noise" if gap <= se else "worse")
    return agree, float(g_sum[aux]["top1_mean"]), float(h_sum[aux]["top1_mean"]), gap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--rungs", type=int, default=3)
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--dim", type=int, default=48)
    ap.add_argument("--per-class", type=int, default=40)
    args = ap.parse_args()

    from heads.options import EXPERIMENT_OPTIONS
    from heads.search.halving import halving_budget
    from heads.search.grid import plan_sweep
    from tests.support.synthetic import write_synthetic_cache

    options = {o.name: () if o.sweepable else o.default for o in EXPERIMENT_OPTIONS}
    options.update(aux=("none,linear",), seeds="0,1", lr=(LRS,), weight_decay=("linear=1e-4,1e-2",),
                   epochs=(str(args.epochs),), name="x", out="/nonexistent", standardize=True)
    plan = plan_sweep(options)
    budget = halving_budget(plan.settings, 2, args.epochs, args.eta, args.rungs)
    val_rows = args.classes * round(0.1 * args.per_class)
    print(f"CPU: {cpu_model()}")
    print(f"grid: none x {len(LRS.split(','))} lr, linear x {len(LRS.split(','))} lr x 2 weight decays; 2 seeds; "
          f"{args.epochs} epochs; halving eta {args.eta}, {args.rungs} rungs {budget.rungs}")
    print(f"epochs trained: grid {budget.grid_epochs}, halving {budget.total_epochs} "
          f"({budget.total_epochs / budget.grid_epochs:.2f}x; {budget.may_stop} of {budget.runs} runs stopped early)")
    print("dataset | method | halving's pick | grid val gap (points) | test top-1 grid / halving (%) ")
    tally, walls = {"same": 0, "within noise": 0, "worse": 0}, []
    for k in range(args.datasets):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            # the class means are fixed by the writer: datasets differ in their noise draw and class separation
            kw = dict(num_classes=args.classes, dim=args.dim, separation=0.25 + 0.05 * k, kinds=("original",))
            train = write_synthetic_cache(d / "train.h5", "train", per_class=args.per_class, seed=100 + k, **kw)
            test = write_synthetic_cache(d / "test.h5", "test", per_class=args.per_class, seed=200 + k,
                                         first_id=10 ** 6, **kw)
            if k == 0:  # the process's one-time costs (imports on the first run) go to neither timing
                warm = argparse.Namespace(**{**vars(args), "epochs": 1})
                sweep(train, test, d, "warm-up", warm)
            wall_grid = sweep(train, test, d, "grid", args)
            wall_halving = sweep(train, test, d, "halving", args, "--search", "halving", "--halving-eta",
                                 str(args.eta), "--halving-rungs", str(args.rungs))
            walls.append((wall_grid, wall_halving))
            print(f"{k} | wall time | grid {wall_grid:.1f} s | halving {wall_halving:.1f} s", flush=True)
            for aux in ("none", "linear"):
                agree, g, h, gap = compare(d, aux, val_rows)
                tally[agree] += 1
                print(f"{k} | {aux} | {agree} | {100 * gap:.2f} | {100 * g:.2f} / {100 * h:.2f}", flush=True)
    grid_s, halving_s = (sum(w[i] for w in walls) for i in (0, 1))
    n = sum(tally.values())
    print(f"agreement: {tally['same']}/{n} same setting, {tally['within noise']}/{n} within validation noise, "
          f"{tally['worse']}/{n} worse")
    print(f"wall time: grid {grid_s:.1f} s, halving {halving_s:.1f} s ({halving_s / grid_s:.2f}x)")


if __name__ == "__main__":
    main()
