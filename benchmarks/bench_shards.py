"""Cost of sharding on one machine: `extract-features` unsharded against `--launcher local --shards 1`
and `--shards 2` (with and without `--cpus-per-task 1`), wall time of the whole command as a user
runs it (TensorFlow start-up per process, merge and views figure included), and the merge alone.
Checks that every merged cache equals the unsharded one. Prints figures; asserts nothing.

    flock /tmp/cpu-heavy.lock .venv/bin/python benchmarks/bench_shards.py [--image-size 224] [--repeats 2]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from pipeline.cub import load_cub
from pipeline.sample import make_sample_dataset

from common import cpu_model

BIN = Path(sys.executable).parent


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    return time.perf_counter() - start, proc.stdout


def same(a: Path, b: Path) -> bool:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names = [n for n in ("features/original", "features/jigsaw", "features/rcm", "spatial/original", "spatial/rcm")
                 if n in fa]
        return fa.attrs["config_hash"] == fb.attrs["config_hash"] and all(
            np.array_equal(fa[n][...], fb[n][...]) for n in names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-root", default=None, help="CUB layout; default: a fresh 10x12 synthetic sample")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--num-views", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--spatial", action="store_true", help="also store spatial maps (the merge then copies them)")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model-cache", default="data/models")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    root = args.data_root or make_sample_dataset(tmp / "sample", classes=10, images_per_class=12)
    rows = len(load_cub(root, "train"))
    common = [str(BIN / "extract-features"), "--data-root", str(root), "--split", "train", "--backbone",
              "random-resnet50v2", "--image-size", str(args.image_size), "--num-views", str(args.num_views),
              "--batch-size", str(args.batch_size), "--precision", args.precision, "--model-cache", str(Path(args.model_cache).resolve()), "--quiet",
              *(["--spatial"] if args.spatial else [])]
    # build the random backbone once, outside the timings
    _, warm = timed(common + ["--out", str(tmp / "warm.h5")])
    used = re.search(r"precision (\w+)", warm)
    runs = {
        "unsharded": [],
        "local, 1 shard": ["--launcher", "local", "--shards", "1"],
        "local, 2 shards": ["--launcher", "local", "--shards", "2"],
        "local, 2 shards, --cpus-per-task 1": ["--launcher", "local", "--shards", "2", "--cpus-per-task", "1"],
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    identical = True
    for r in range(args.repeats):
        for i, (name, extra) in enumerate(runs.items()):
            folder = tmp / f"run{r}-{i}"
            times[name].append(timed(common + ["--out", str(folder / "train.h5"), *extra])[0])
            if name != "unsharded":
                identical &= same(tmp / f"run{r}-0" / "train.h5", folder / "train.h5")
    shards = sorted((tmp / "run0-2").glob("train.shard-*"))
    merge_s, _ = timed([str(BIN / "merge-caches"), str(tmp / "merged.h5"), *map(str, shards)])
    size = (tmp / "merged.h5").stat().st_size / 2**20
    print(f"CPU: {cpu_model()}; {rows} rows, image_size {args.image_size}, "
          f"{1 + 2 * args.num_views} inputs per image, batch {args.batch_size}, spatial={args.spatial}, "
          f"precision {used[1] if used else '?'} (--precision {args.precision}), "
          f"{args.repeats} repeats (median wall time of the whole command)")
    base = statistics.median(times["unsharded"])
    one = statistics.median(times["local, 1 shard"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:38s} {med:6.1f} s  ({' '.join(f'{v:.1f}' for v in values)})  "
              f"x{med / base:.2f} of unsharded, x{med / one:.2f} of 1 shard")
    print(f"  merge-caches of the 2 shards alone      {merge_s:6.1f} s  ({size:.1f} MiB written)")
    print(f"  every merged cache equal to the unsharded one: {'yes' if identical else 'NO'}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
