"""Stage-2 DCL speed at CUB scale: one `--aux dcl` epoch with spatial maps (7 x 7 x 2048, float16) and
without (pooled features only). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_dcl.py [--cache-dir DIR] [--epochs 2] [--precision auto]

Writes (or reuses) a synthetic CUB-shaped training cache: 5,994 rows, 200 classes, D = 2048, one RCM
view (an epoch draws one view per image, so V changes memory, not the epoch's work), spatial maps
7 x 7. About 2.4 GB on disk.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS, CLASSES, DIM, VIEWS, MAP = 5994, 200, 2048, 1, (7, 7)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = ap.parse_args()

    import torch

    from heads.data import FeatureTable, Scaler, stratified_split
    from heads.methods import METHODS
    import common  # noqa: F401  (puts the repository root on sys.path)
    from tests.support.synthetic import write_synthetic_cache
    from heads.train import TrainOptions, fit, resolve_precision
    from pipeline.cache import read_cache

    directory = Path(args.cache_dir or tempfile.mkdtemp())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bench_dcl_train.h5"
    if not path.exists():
        t = time.perf_counter()
        write_synthetic_cache(path, "train", num_classes=CLASSES, dim=DIM, num_views=VIEWS, kinds=("original", "rcm"),
                              num_rows=ROWS, spatial_shape=MAP)
        print(f"cache written in {time.perf_counter() - t:.0f} s: {path.stat().st_size / 2**30:.2f} GiB")
    precision = resolve_precision(args.precision, torch.device("cpu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision {precision}, batch {args.batch_size}")
    for spatial in (True, False):
        cache = read_cache(path)
        train_rows, val_rows = stratified_split(cache.label, 0.1, 0)
        options = {"views": cache.config["views"], "spatial_kinds": cache.spatial_kinds if spatial else []}
        torch.manual_seed(0)
        method = METHODS["dcl"](options, cache.num_classes, cache.feature_dim, len(cache))
        t = time.perf_counter()
        table = FeatureTable.from_cache(cache, method.needs, "cpu")
        load = time.perf_counter() - t
        scaler = Scaler.fit(cache.features["original"], train_rows)
        result = fit(method, table, train_rows, val_rows, scaler,
                     TrainOptions(epochs=args.epochs, batch_size=args.batch_size, lr=0.01, precision=precision),
                     progress=False)
        seconds = [round(r["seconds"], 2) for r in result.history]
        kind = "spatial 7x7 maps (ce + adv + align)" if spatial else "pooled features (ce + adv)"
        print(f"--aux dcl, {kind}: {len(train_rows)} train + {len(val_rows)} val rows; "
              f"epoch seconds {seconds} (incl. validation); maps loaded in {load:.1f} s")


if __name__ == "__main__":
    main()
