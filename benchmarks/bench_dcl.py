"""Stage-2 DCL cost and the cheaper settings: seconds per `--aux dcl` epoch with 7 x 7 x 2048 spatial maps for
the default adapter, `--dcl-hidden 128`, `--dcl-pca 256`, both, in fp32 and (where the CPU has native
bfloat16) bf16; and the accuracy change of each on small synthetic caches with known structure
(several seeds, mean +- std). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_dcl.py [--rows 5994] [--views 4] [--cache-dir DIR] [--seeds 0,1,2]

CUB scale is 5,994 rows (200 classes, D = 2048, 4 RCM views; an epoch draws one view per image, so V
changes memory, not the epoch's work). Writing that cache takes minutes; --rows N measures a smaller one
and also prints the epoch time scaled linearly to 5,994 rows (labelled as scaled). Maps follow
--maps-in-memory auto (out of core above 2 GiB).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CUB_ROWS, CLASSES, DIM, MAP = 5994, 200, 2048, (7, 7)
SETTINGS = {"default (hidden 512)": {}, "--dcl-hidden 128": {"dcl_hidden": 128}, "--dcl-pca 256": {"dcl_pca": 256},
            "--dcl-pca 256 --dcl-hidden 128": {"dcl_pca": 256, "dcl_hidden": 128}}


def train_once(cache, extra: dict, precision: str, epochs: int, seed: int, val_fraction: float, lr: float,
               maps: str = "auto", table=None):
    """(fit result, table, seconds to fit the PCA and project the maps once) of one `--aux dcl` run on the training cache."""
    import torch

    from heads.training.data import FeatureTable, Scaler, stratified_split
    from heads.methods.registry import METHODS
    from heads.training.step import TrainOptions
    from heads.training.train import fit

    train_rows, val_rows = stratified_split(cache.label, val_fraction, seed)
    torch.manual_seed(seed)
    method = METHODS["dcl"]({"views": cache.config["views"], "spatial_kinds": cache.spatial_kinds, **extra},
                            cache.num_classes, cache.feature_dim, len(cache))
    table = table or FeatureTable.from_cache(cache, method.needs, "cpu", maps)
    t = time.perf_counter()
    method.prepare_inputs(table, train_rows, seed)
    method.reduced_table(table)  # --dcl-pca: the maps projected once (fit reuses them)
    prep = time.perf_counter() - t
    result = fit(method, table, train_rows, val_rows, Scaler.fit(cache.features["original"], train_rows),
                 TrainOptions(epochs=epochs, batch_size=256, lr=lr, seed=seed, precision=precision), progress=False)
    return result, table, prep


def speed(args, precisions: list[str]) -> None:
    from pipeline.reader import read_cache
    from tests.support.synthetic import write_synthetic_cache

    directory = Path(args.cache_dir or tempfile.mkdtemp())
    directory.mkdir(parents=True, exist_ok=True)
    path = Path(args.cache) if args.cache else directory / f"bench_dcl_{args.rows}_v{args.views}.h5"
    if not path.exists():
        t = time.perf_counter()
        write_synthetic_cache(path, "train", num_classes=CLASSES, dim=DIM, num_views=args.views, kinds=("original", "rcm"),
                              num_rows=args.rows, spatial_shape=MAP)
        print(f"cache written in {time.perf_counter() - t:.0f} s: {path.stat().st_size / 2**30:.2f} GiB", flush=True)
    cache = read_cache(path)
    args.rows, args.views = len(cache), cache.config["views"].get("num_views", args.views)
    scale = "" if args.rows == CUB_ROWS else f" ({args.rows} rows measured; x{CUB_ROWS / args.rows:.2f} = scaled to {CUB_ROWS})"
    print(f"\nseconds per epoch (training + validation), 7x7x2048 maps, V = {args.views}{scale}:", flush=True)
    table = None
    for precision in precisions:
        for name, extra in SETTINGS.items():
            result, table, prep = train_once(cache, extra, precision, args.epochs, 0, 0.1, 0.01, table=table)
            s = min(r["seconds"] for r in result.history)
            scaled = "" if args.rows == CUB_ROWS else f" -> {s * CUB_ROWS / args.rows:6.1f} s scaled"
            pca = f"; PCA fitted and maps projected once in {prep:.1f} s, explained {result.inputs['explained_variance']:.3f}" if result.inputs else ""
            print(f"  {precision:>4}  {name:<32} {s:6.1f} s{scaled}{pca}", flush=True)
    print(f"  (maps {'in memory' if table.maps_in_memory else 'out of core'})")


def accuracy(args, precision: str) -> None:
    from pipeline.reader import read_cache
    from tests.support.synthetic import write_synthetic_cache

    classes, dim, per_class = 10, 64, 40
    directory = Path(tempfile.mkdtemp())
    print(f"\nvalidation top-1 on small synthetic caches ({classes} classes x {per_class} rows, D = {dim}, 7x7 maps: each "
          f"position = the row's feature + noise; 30% of each class held out; {args.small_epochs} epochs, {precision}; "
          f"seeds {args.seeds}; --dcl-pca {dim // 8} stands for 256 of 2048, i.e. D/8):", flush=True)
    settings = {"default (hidden 512)": {}, "--dcl-hidden 128": {"dcl_hidden": 128}, f"--dcl-pca {dim // 8}": {"dcl_pca": dim // 8},
                f"--dcl-pca {dim // 8} --dcl-hidden 128": {"dcl_pca": dim // 8, "dcl_hidden": 128}}
    seeds = [int(s) for s in args.seeds.split(",")]
    caches = {s: read_cache(write_synthetic_cache(directory / f"small_{s}.h5", "train", num_classes=classes,
                                                  per_class=per_class, dim=dim, num_views=2, kinds=("original", "rcm"),
                                                  seed=s, spatial_shape=MAP, separation=0.25)) for s in seeds}
    base = None
    for name, extra in settings.items():
        accs = []
        for s in seeds:
            result, _, _ = train_once(caches[s], extra, precision, args.small_epochs, s, 0.3, 0.05, maps="yes")
            accs.append(max(r["val_acc"] for r in result.history))
        mean, sd = statistics.mean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0
        base = mean if base is None else base
        print(f"  {name:<32} {100 * mean:5.1f} +- {100 * sd:4.1f} %  (change {100 * (mean - base):+5.1f} points)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--cache", default=None, help="an existing synthetic training cache with 7x7x2048 maps to time")
    ap.add_argument("--rows", type=int, default=CUB_ROWS)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1, help="epochs per speed setting (the fastest is printed)")
    ap.add_argument("--small-epochs", type=int, default=15)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--skip", choices=["speed", "accuracy"], default=None)
    args = ap.parse_args()

    import torch

    from common import cpu_model
    from heads.training.step import resolve_precision

    native = resolve_precision("auto", torch.device("cpu")) == "bf16"
    precisions = ["fp32", "bf16"] if native else ["fp32"]
    print(f"{cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads; native bf16: {native}")
    if args.skip != "speed":
        speed(args, precisions)
    if args.skip != "accuracy":
        accuracy(args, precisions[-1])


if __name__ == "__main__":
    main()
