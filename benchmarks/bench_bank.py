"""A bank of linear heads: a 10-point weight-decay grid trained in one pass (heads.bank) against one linear run.

    .venv/bin/python benchmarks/bench_bank.py [--epochs 5] [--points 10] [--rows 5994] [--dim 2048] [--classes 200]

CUB-shaped synthetic training cache (5,994 rows, D = 2048, 200 classes, original features only). Times
one `--aux linear` run (heads.experiment.run_experiment, no test scoring) and the bank of `--points`
runs that differ only in weight decay (heads.bank.train_bank: one batch stream, one backward pass a
step), and prints their ratio with the CPU model. Both write their run directories as a sweep would; a
1-epoch warm-up run first pays the process's one-time import costs, so neither timing includes them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--rows", type=int, default=5994)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=200)
    args = ap.parse_args()

    import torch

    from heads.bank import banks_of, train_bank
    from heads.experiment import Caches, run_experiment
    from heads.options import EXPERIMENT_OPTIONS
    from heads.search import log_grid
    from heads.sweep import plan_sweep
    from tests.support.synthetic import write_synthetic_cache

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        kw = dict(num_classes=args.classes, dim=args.dim, kinds=("original",))
        train = write_synthetic_cache(d / "train.h5", "train", num_rows=args.rows, seed=0, **kw)
        test = write_synthetic_cache(d / "test.h5", "test", per_class=1, seed=1, first_id=10 ** 6, **kw)
        caches = Caches.load(str(train), str(test), ["linear"], torch.device("cpu"), log=lambda m: None)
        options = {o.name: () if o.sweepable else o.default for o in EXPERIMENT_OPTIONS}
        grid = ",".join(str(v) for v in log_grid(1e-6, 1e-2, args.points))
        options.update(aux=("linear",), seeds="0", name="bank", out=str(d / "sweeps"), standardize=True,
                       epochs=(str(args.epochs),), precision=("fp32",), weight_decay=(grid,))
        runs = plan_sweep(options).runs
        (bank,), _ = banks_of(runs)
        # warm-up: the process's one-time costs (torch's optimiser compile machinery and matplotlib load on the
        # first run) are paid here, by neither timing
        run_experiment(caches, {**runs[0].options, "epochs": 1}, d / "warm-up", score_test=False)
        start = time.perf_counter()
        run_experiment(caches, runs[0].options, d / "one", score_test=False)
        one = time.perf_counter() - start
        start = time.perf_counter()
        train_bank(caches, bank, False, lambda m: None, lambda run, message, seconds: None)
        banked = time.perf_counter() - start
    print(f"CPU: {cpu_model()}; torch threads {torch.get_num_threads()}")
    print(f"linear probe, {args.rows} rows, D={args.dim}, {args.classes} classes, {args.epochs} epochs, batch 256, fp32")
    print(f"one run:                      {one:8.2f} s")
    print(f"bank of {args.points} weight decays:     {banked:8.2f} s  ({grid})")
    print(f"ratio bank / one run:         {banked / one:8.2f}x  (separate runs: {args.points}x)")


if __name__ == "__main__":
    main()
