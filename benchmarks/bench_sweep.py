"""Sweep overhead at CUB scale: wall time of one `sweep-heads` command against the sum of its runs' training time.

    .venv/bin/python benchmarks/bench_sweep.py [--cache-dir DIR] [--epochs 30] [--seeds 0,1]

Synthetic caches shaped like CUB's (5,994 train / 5,794 test rows, 200 classes, D = 2048, 4 jigsaw
views). The wall time covers everything the command does: start-up, reading and checking the caches
once, every run, selection, scoring the selected runs on test, summary and figures. The runs'
training time is the `seconds` column of runs.csv (each run's fit, validation passes included).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_heads import ensure_caches  # noqa: E402
from common import cpu_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, default=None, help="Keep the synthetic caches here (default: a temp dir).")
    ap.add_argument("--epochs", default="30")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--aux", default="none,linear,pirl")
    ap.add_argument("--aux-weight", default="0.1,1")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    directory = args.cache_dir or Path(tmp.name)
    directory.mkdir(parents=True, exist_ok=True)
    train, test = ensure_caches(directory)
    out = Path(tempfile.mkdtemp(dir=directory, prefix="sweeps-"))
    exe = Path(sys.executable).with_name("sweep-heads")
    cmd = [str(exe), "--train", str(train), "--test", str(test), "--out", str(out), "--name", "bench",
           "--aux", args.aux, "--aux-weight", args.aux_weight, "--seeds", args.seeds, "--epochs", args.epochs,
           "--quiet"]
    print(f"CPU: {cpu_model()}")
    print("command: " + " ".join(cmd[1:]))
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(done.stderr)
    with open(out / "bench" / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    trained = sum(float(r["seconds"]) for r in rows)
    print(f"{len(rows)} runs at CUB scale ({args.epochs} epochs each): sweep wall time {wall:.1f} s, "
          f"sum of the runs' training time {trained:.1f} s, ratio {wall / trained:.3f}")
    for r in rows:
        print(f"  {r['setting']:28s} seed {r['seed']}: {float(r['seconds']):6.1f} s, val top-1 {100 * float(r['val_top1']):.2f}%")


if __name__ == "__main__":
    main()
