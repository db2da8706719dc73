"""Wall time of a CUB-scale sweep in process against `--launcher local --workers 1` and `--workers 2`.

    .venv/bin/python benchmarks/bench_sweep_workers.py [--cache-dir DIR] [--epochs 1] [--seeds 0,1]

Synthetic caches shaped like CUB's (bench_heads.ensure_caches: 5,994 train / 5,794 test rows, 200
classes, D = 2048). The grid is `--aux none --classifier-input embedding,hidden` over the seeds: settings
that change the network, so no two runs share a pass (heads.training.bank) in process or in a worker. Each
command is timed whole (start-up, reading the caches, the runs, selection, test scoring, summary); the
workers get this machine's cores / N torch threads each. The three sweeps must agree (runs.csv without
its timing column, selection.json, summary.csv): the script says whether they do. In fp32 they do; in
bf16 (--precision auto on a CPU with native bf16) workers with fewer threads than the in-process run
differ in the last digits (docs/cluster.md, "Sweeps on a cluster").
"""

from __future__ import annotations

import argparse
import csv
import json
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

MODES = {"in process": [], "1 local worker": ["--launcher", "local", "--workers", "1"],
         "2 local workers": ["--launcher", "local", "--workers", "2"]}


def comparable(sweep_dir: Path) -> tuple:
    with open(sweep_dir / "runs.csv", newline="") as f:
        runs = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
    return runs, json.loads((sweep_dir / "selection.json").read_text()), (sweep_dir / "summary.csv").read_text()


def timed_sweep(base: list[str], out: Path, name: str, extra: list[str]) -> tuple[float, float]:
    """(wall seconds of the command, seconds of training summed over runs.csv)."""
    start = time.perf_counter()
    done = subprocess.run([*base, "--out", str(out), "--name", name, *extra], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stderr[-2000:]}")
    with open(out / name / "runs.csv", newline="") as f:
        return wall, sum(float(r["seconds"]) for r in csv.DictReader(f))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, default=None, help="Keep the synthetic caches here (default: a temp dir).")
    ap.add_argument("--epochs", default="1")
    ap.add_argument("--seeds", default="0,1")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    directory = args.cache_dir or Path(tmp.name)
    directory.mkdir(parents=True, exist_ok=True)
    train, test = ensure_caches(directory)
    out = Path(tempfile.mkdtemp(dir=directory, prefix="sweeps-"))
    base = [str(Path(sys.executable).with_name("sweep-heads")), "--train", str(train), "--test", str(test),
            "--data-root", str(out / "no-images"), "--aux", "none", "--classifier-input", "embedding,hidden",
            "--seeds", args.seeds, "--epochs", args.epochs, "--quiet"]
    print(f"CPU: {cpu_model()}")
    print("grid: " + " ".join(base[5:]))
    results = {}
    for k, (mode, extra) in enumerate(MODES.items()):
        wall, train = timed_sweep(base, out, f"s{k}", extra)
        results[mode] = wall
        print(f"{mode:>16}: {wall:7.1f} s wall ({train:.1f} s of training summed over runs.csv)", flush=True)
    same = all(comparable(out / f"s{k}") == comparable(out / "s0") for k in range(1, len(MODES)))
    print(f"2 local workers / in process: {results['2 local workers'] / results['in process']:.2f}x wall time")
    print(f"runs.csv (timing aside), selection.json and summary.csv identical across the three: {same}")


if __name__ == "__main__":
    main()
