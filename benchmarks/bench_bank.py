"""A bank of linear heads: a 10-point weight-decay grid trained in one pass (heads.training.bank) against one linear run.

    .venv/bin/python benchmarks/bench_bank.py [--epochs 5] [--points 10] [--repeats 1] [--threads N]
                                              [--precision fp32] [--rows 5994] [--dim 2048] [--classes 200]

CUB-shaped synthetic training cache (5,994 rows, D = 2048, 200 classes, original features only). Times
one `--aux linear` run (heads.training.experiment.run_experiment, no test scoring) and the bank of `--points`
runs that differ only in weight decay (heads.search.sweep.train_together, the one runner; fp32 linear heads train as one
LinearStack), each writing its run directories as a sweep would, and prints their ratio with the CPU
model. `--repeats N` measures the pair N times in this process (one run, then the bank) and prints
every ratio. Each figure is split into training (the fit, from metrics.json) and the rest (splitting,
standardising, writing config/history/model/curves.png). A 1-epoch warm-up run first pays the process's
one-time costs (imports, torch's and matplotlib's first calls), so no timing includes them.

On a machine whose cores other processes also use, torch's default of one thread per core makes every small
parallel operation wait for a descheduled thread: one run (many small operations a step) then slows far
more than a bank (a few large ones), and the ratio looks better than it is. `--threads 1` (or a quiet
machine) measures the work itself.

What a bank cannot share is the arithmetic: its heads' products are H times one run's, so the ratio's
floor is about H x (one run's matrix products) / (one run's whole time).

`--search halving [--eta 3 --rungs 3]` times the grid as `sweep-heads --search halving` trains it instead
(heads.search.halving.halving_search with sweep-heads' in-process executor: each rung's runs of a seed as one bank,
survivors continuing from their rung's state, heads.training.rungs): every point is still trained and recorded as its
own run, the stopped ones to their rung's epochs. That is a different answer from the full grid's when
halving stops the setting the grid would pick (benchmarks/bench_halving.py measures how often).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_model  # noqa: E402


def timed(work) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of work()."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def train_seconds(run_dir: Path) -> float:
    """The fit's seconds as metrics.json records them (a bank's head: the whole bank's)."""
    timing = json.loads((run_dir / "metrics.json").read_text())["timing"]
    return timing["bank"]["shared_seconds"] if "bank" in timing else timing["train_seconds"]


def describe_rungs(runs: list) -> str:
    """Epochs each run reached, and from which epoch it was continued."""
    out = []
    for run in runs:
        timing = json.loads((run.run_dir / "metrics.json").read_text())["timing"]
        with open(run.run_dir / "history.csv") as f:
            epochs = sum(1 for _ in f) - 1
        out.append(f"{epochs}" + (f" (from {timing['continued_from_epoch']})" if "continued_from_epoch" in timing else ""))
    return "epochs reached per weight decay: " + ", ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--rows", type=int, default=5994)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--search", choices=("grid", "halving"), default="grid")
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--rungs", type=int, default=3)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from heads.search.sweep import train_together
    from heads.training.bank import banks_of
    from heads.training.experiment import Caches, run_experiment
    from heads.options import EXPERIMENT_OPTIONS
    from heads.search.halving import halving_search, log_grid
    from heads.search.grid import plan_sweep
    from heads.search.sweep import in_process_executor
    from tests.support.synthetic import write_synthetic_cache

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        kw = dict(num_classes=args.classes, dim=args.dim, kinds=("original",))
        train = write_synthetic_cache(d / "train.h5", "train", num_rows=args.rows, seed=0, **kw)
        test = write_synthetic_cache(d / "test.h5", "test", per_class=1, seed=1, first_id=10 ** 6, **kw)
        caches = Caches.load(str(train), str(test), ["linear"], torch.device("cpu"), log=lambda m: None)
        options = {o.name: () if o.sweepable else o.default for o in EXPERIMENT_OPTIONS}
        grid = ",".join(str(v) for v in log_grid(1e-6, 1e-2, args.points))
        options.update(aux=("linear",), seeds="0", name="bank", standardize=True, epochs=(str(args.epochs),),
                       precision=(args.precision,), weight_decay=(grid,))
        run_experiment(caches, plan_sweep({**options, "out": str(d / "w")}).runs[0].spec.with_options(epochs=1),
                       d / "warm-up", score_test=False)
        print(f"CPU: {cpu_model()}; torch threads {torch.get_num_threads()}")
        how = (f"successive halving (eta {args.eta}, {args.rungs} rungs; banks per rung, survivors continued)"
               if args.search == "halving" else "one bank")
        print(f"linear probe, {args.rows} rows, D={args.dim}, {args.classes} classes, {args.epochs} epochs, "
              f"batch 256, {args.precision}; {args.points} weight decays ({grid}) as {how}")
        ratios = []
        for r in range(args.repeats):
            runs = plan_sweep({**options, "out": str(d / f"sweeps{r}")}).runs
            (bank,), _ = banks_of(runs)
            one, one_cpu = timed(lambda: run_experiment(caches, runs[0].spec, d / f"one{r}", score_test=False))
            if args.search == "halving":
                execute = in_process_executor(caches, False, lambda m: None)
                banked, bank_cpu = timed(lambda: halving_search(runs, execute, args.eta, args.rungs))
                fit_one, fit_bank = train_seconds(d / f"one{r}"), float("nan")  # rung passes are not all on file
                print(f"    halving: {describe_rungs(runs)}")
            else:
                banked, bank_cpu = timed(lambda: train_together(bank, caches, False, lambda m: None))
                fit_one, fit_bank = train_seconds(d / f"one{r}"), train_seconds(bank[0].run_dir)
            ratios.append(banked / one)
            print(f"[{r + 1}] one run {one:6.2f} s (training {fit_one:5.2f} s, CPU {one_cpu:6.2f} s) | bank "
                  f"{banked:6.2f} s (training {fit_bank:5.2f} s, CPU {bank_cpu:6.2f} s) | ratio {banked / one:5.2f}x "
                  f"(training {fit_bank / fit_one:5.2f}x, CPU {bank_cpu / one_cpu:5.2f}x)")
    what = "halving" if args.search == "halving" else "bank"
    print(f"ratio {what} / one run: {', '.join(f'{x:.2f}x' for x in ratios)} (median {statistics.median(ratios):.2f}x; "
          f"{args.points} separate runs: {args.points}x)")


if __name__ == "__main__":
    main()
