"""Stage 2 on a CUDA device: epoch seconds and training rows/s of every `--aux` method at CUB scale
(synthetic: 5,994 rows, 200 classes, D = 2048; DCL also with 7 x 7 maps). Prints figures; asserts nothing.
Without a GPU it says so and exits 0.

    .venv/bin/python benchmarks/bench_gpu.py [--rows 5994] [--epochs 2] [--precision auto] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5994)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--maps-in-memory", default="auto", choices=["auto", "yes", "no"])
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device is present: nothing to measure (bench_gpu.py measures stage 2 on a GPU)")
        return
    from heads.training.data import FeatureTable, Scaler, stratified_split
    from heads.methods.registry import METHODS
    from heads.options import AUX_CHOICES
    from heads.training.step import resolve_precision, TrainOptions
    from heads.training.train import fit
    from pipeline.reader import read_cache
    from tests.support.synthetic import write_synthetic_cache

    device = torch.device("cuda")
    precision = resolve_precision(args.precision, device)
    directory = Path(args.cache_dir or tempfile.mkdtemp())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench_gpu_{args.rows}_v{args.views}.h5"
    if not path.exists():
        write_synthetic_cache(path, "train", num_classes=200, dim=2048, num_views=args.views, num_rows=args.rows,
                              spatial_shape=(7, 7))
    cache = read_cache(path)
    train_rows, val_rows = stratified_split(cache.label, 0.1, 0)
    print(f"{torch.cuda.get_device_name(device)}; torch {torch.__version__}; precision {precision}; "
          f"{len(train_rows)} train + {len(val_rows)} val rows; batch {args.batch_size}")
    for aux in AUX_CHOICES:
        for spatial in ((True, False) if aux in ("dcl", "dcl-none") else (False,)):
            torch.manual_seed(0)
            method = METHODS[aux]({"views": cache.config["views"], "spatial_kinds": cache.spatial_kinds if spatial else []},
                                  cache.num_classes, cache.feature_dim, len(cache)).to(device)
            t = time.perf_counter()
            table = FeatureTable.from_cache(cache, set(method.needs), device, args.maps_in_memory)
            torch.cuda.synchronize()
            load = time.perf_counter() - t
            result = fit(method, table, train_rows, val_rows, Scaler.fit(cache.features["original"], train_rows).to(device),
                         TrainOptions(epochs=args.epochs, batch_size=args.batch_size, lr=0.01, precision=precision),
                         progress=False)
            seconds = [round(r["seconds"], 2) for r in result.history]
            maps = "" if not spatial else f", maps {'in GPU memory' if table.maps_in_memory else 'out of core (pinned)'}"
            print(f"--aux {aux}{' with 7x7 maps' if spatial else ''}{maps}: epoch s {seconds} (incl. validation), "
                  f"{len(train_rows) / min(seconds):.0f} train rows/s; loaded in {load:.1f} s")
            del table, method
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
