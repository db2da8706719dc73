"""Stage-2 speed at CUB scale: one `--aux pirl` epoch, and launch -> first training step of train-heads.

    .venv/bin/python benchmarks/bench_heads.py [--cache-dir DIR] [--epochs 3]

Writes (or reuses) synthetic caches shaped like CUB's (5,994 train / 5,794 test rows, 200 classes,
1 original + 4 jigsaw views, D = 2048) and prints figures; it asserts nothing. Targets on a 2-core
CPU: an epoch <= 1 s, the first step <= 3 s after launch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN_ROWS, TEST_ROWS, CLASSES, DIM, VIEWS = 5994, 5794, 200, 2048, 4


def ensure_caches(directory: Path) -> tuple[Path, Path]:
    import common  # noqa: F401  (puts the repository root on sys.path)
    from tests.support.synthetic import write_synthetic_cache

    train, test = directory / "bench_train.h5", directory / "bench_test.h5"
    kw = dict(num_classes=CLASSES, dim=DIM, num_views=VIEWS, kinds=("original", "jigsaw"))
    if not train.exists():
        write_synthetic_cache(train, "train", num_rows=TRAIN_ROWS, seed=0, **kw)
    if not test.exists():
        write_synthetic_cache(test, "test", num_rows=TEST_ROWS, seed=1, first_id=100_000, **kw)
    return train, test


def epoch_times(train: Path, test: Path, epochs: int, precision: str) -> tuple[list[float], list[float], str]:
    """Seconds per epoch from an in-process run: (training steps only, with the validation pass)."""
    import torch

    from heads.training.data import FeatureTable, Scaler, load_caches, stratified_split
    from heads.methods.registry import METHODS
    from heads.training.step import resolve_precision, TrainOptions
    from heads.training.train import fit

    train_cache, _ = load_caches(str(train), str(test), {"pirl": {"jigsaw"}})
    train_rows, val_rows = stratified_split(train_cache.label, 0.1, 0)
    torch.manual_seed(0)
    method = METHODS["pirl"]({"train_rows": train_rows}, train_cache.num_classes, train_cache.feature_dim, len(train_cache))
    table = FeatureTable.from_cache(train_cache, method.needs, "cpu")
    scaler = Scaler.fit(train_cache.features["original"], train_rows)
    resolved = resolve_precision(precision, torch.device("cpu"))
    opts = TrainOptions(epochs=epochs, precision=resolved)
    # time the steps alone by wrapping the batch generator
    step_seconds: list[float] = []
    import heads.training.train as loop

    real = loop.train_batches

    def timed(*args, **kwargs):
        start = time.perf_counter()
        yield from real(*args, **kwargs)
        step_seconds.append(time.perf_counter() - start)

    loop.train_batches = timed
    try:
        result = fit(method, table, train_rows, val_rows, scaler, opts, progress=False)
    finally:
        loop.train_batches = real
    return step_seconds, [r["seconds"] for r in result.history], resolved


def first_step_seconds(train: Path, test: Path, out: Path) -> float:
    exe = Path(sys.executable).with_name("train-heads")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "heads.cli"]
    cmd += ["--train", str(train), "--test", str(test), "--aux", "pirl", "--epochs", "1", "--quiet", "--out", str(out)]
    start = time.time()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    (run,) = sorted(p for p in out.iterdir() if p.is_dir())[-1:]
    first = json.loads((run / "metrics.json").read_text())["timing"]["first_step_unix"]
    return first - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, default=None, help="Keep the synthetic caches here (default: a temp dir).")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--launches", type=int, default=3, help="train-heads launches timed to the first step.")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    directory = args.cache_dir or Path(tmp.name)
    directory.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    train, test = ensure_caches(directory)
    import torch

    print(f"caches ready in {time.perf_counter() - t:.1f} s: {train.stat().st_size / 2**20:.0f} + "
          f"{test.stat().st_size / 2**20:.0f} MiB; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs")
    for precision in ("auto", "fp32"):
        steps, totals, resolved = epoch_times(train, test, args.epochs, precision)
        print(f"--aux pirl epoch ({resolved}, batch 256, {TRAIN_ROWS} rows = 5,394 train + 600 val, "
              "1 of 4 jigsaw views drawn per image): "
              f"steps {statistics.median(steps[1:] or steps):.3f} s median "
              f"(all: {', '.join(f'{s:.3f}' for s in steps)}); with validation pass "
              f"{statistics.median(totals[1:] or totals):.3f} s")
    runs = directory / "runs"
    runs.mkdir(exist_ok=True)
    firsts = [first_step_seconds(train, test, runs) for _ in range(args.launches)]
    print(f"train-heads launch -> first training step: {min(firsts):.2f} s best, "
          f"{statistics.median(firsts):.2f} s median of {len(firsts)} ({', '.join(f'{s:.2f}' for s in firsts)})")


if __name__ == "__main__":
    main()
