"""Peak memory and epoch time of `--aux dcl` with spatial maps held in memory vs read out of core
(`--maps-in-memory yes|no`), at several row counts. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_maps_memory.py [--cache-dir DIR] [--rows 1500,3000,5994] [--views 4]

Each measurement runs in its own process (peak RSS: VmHWM of /proc/self/status, which exec resets;
ru_maxrss is inherited across exec from the parent that wrote the caches): load the table, fit one
epoch (training + validation), report. Synthetic CUB-shaped caches
(200 classes, D = 2048, 7 x 7 maps, V RCM views) are written once per row count (about 1 GB per
1,000 rows at V = 4) and reused. Out of core, the maps are copied once, uncompressed, to a scratch
file ($TMPDIR), whose pages live in the kernel's page cache, not in the process.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CLASSES, DIM, MAP = 200, 2048, (7, 7)


def cache_for(directory: Path, rows: int, views: int) -> Path:
    """The synthetic training cache of `rows` rows (written once)."""
    from tests.support.synthetic import write_synthetic_cache

    path = directory / f"maps_{rows}_v{views}.h5"
    if not path.exists():
        t = time.perf_counter()
        write_synthetic_cache(path, "train", num_classes=CLASSES, dim=DIM, num_views=views, kinds=("original", "rcm"),
                              num_rows=rows, spatial_shape=MAP)
        print(f"  wrote {path.name} in {time.perf_counter() - t:.0f} s ({path.stat().st_size / 2**30:.1f} GiB)", flush=True)
    return path


def peak_rss_gib() -> float:
    """This process's peak resident set (VmHWM), GiB; ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child(cache_path: str, mode: str, epochs: int, batch_size: int, precision: str) -> None:
    """One measurement in this process: prints one JSON line."""
    import torch

    from heads.data import FeatureTable, Scaler, stratified_split
    from heads.methods import METHODS
    from heads.train import TrainOptions, fit, resolve_precision
    from pipeline.reader import read_cache

    cache = read_cache(cache_path)
    train_rows, val_rows = stratified_split(cache.label, 0.1, 0)
    torch.manual_seed(0)
    method = METHODS["dcl"]({"views": cache.config["views"], "spatial_kinds": cache.spatial_kinds},
                            cache.num_classes, cache.feature_dim, len(cache))
    t = time.perf_counter()
    table = FeatureTable.from_cache(cache, method.needs, "cpu", mode)
    load = time.perf_counter() - t
    rss_loaded = peak_rss_gib()
    result = fit(method, table, train_rows, val_rows, Scaler.fit(cache.features["original"], train_rows),
                 TrainOptions(epochs=epochs, batch_size=batch_size, lr=0.01,
                              precision=resolve_precision(precision, torch.device("cpu"))), progress=False)
    print(json.dumps({"rows": len(cache), "mode": mode, "load_s": load, "epoch_s": [r["seconds"] for r in result.history],
                      "peak_rss_gib_after_load": rss_loaded,
                      "peak_rss_gib": peak_rss_gib()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--rows", default="1500,3000,5994")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--modes", default="no,yes", help="which of out of core (no) / in memory (yes) to measure")
    ap.add_argument("--in-memory-rows", type=int, default=5994, help="measure in memory only up to this many rows")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--child", nargs=2, metavar=("CACHE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.epochs, args.batch_size, args.precision)
        return
    from common import cpu_model

    directory = Path(args.cache_dir or tempfile.mkdtemp())
    directory.mkdir(parents=True, exist_ok=True)
    print(f"{cpu_model()}; scratch {tempfile.gettempdir()} ({shutil.disk_usage(tempfile.gettempdir()).free / 2**30:.0f} GiB "
          f"free); V = {args.views}; {args.epochs} epoch(s), batch {args.batch_size}, precision {args.precision}", flush=True)
    for rows in (int(r) for r in args.rows.split(",")):
        path = cache_for(directory, rows, args.views)
        for mode in args.modes.split(","):
            if mode == "yes" and rows > args.in_memory_rows:
                continue
            out = subprocess.run([sys.executable, __file__, "--child", str(path), mode, "--epochs", str(args.epochs),
                                  "--batch-size", str(args.batch_size), "--precision", args.precision],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"  {rows} rows, maps in memory {mode}: failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {rows:>6} rows, maps {'in memory ' if mode == 'yes' else 'out of core'}: peak RSS "
                  f"{r['peak_rss_gib']:.2f} GiB (after loading {r['peak_rss_gib_after_load']:.2f}); load {r['load_s']:.0f} s; "
                  f"epoch s {[round(s, 1) for s in r['epoch_s']]} (incl. validation)", flush=True)


if __name__ == "__main__":
    main()
