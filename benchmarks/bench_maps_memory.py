"""Peak memory and epoch time of `--aux dcl` with spatial maps (and the RCM views' pooled features) held in memory
vs read out of core (`--maps-in-memory yes|no`), at several row counts. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_maps_memory.py [--cache-dir DIR] [--rows 5994,48562] [--views 4]
        [--modes no,yes] [--repeats 2] [--steps 0] [--unwritten-from 10000] [--paired]

Each measurement runs in its own process (peak RSS: VmHWM of /proc/self/status, which exec resets;
ru_maxrss is inherited across exec from the parent that wrote the caches). The child follows
train-heads' path for the training cache: read the cache's original pooled features, check them finite,
build the table (`FeatureTable.from_cache`: the RCM views and maps in memory, or staged to uncompressed
scratch files in $TMPDIR whose pages live in the kernel's page cache, not in the process), fit
the scaler, fit DCL for one epoch (training + validation on 10% of the rows). It prints VmHWM after
each phase, so the phase that sets the peak is named. Not loaded: the test cache (its table holds the
test split's original maps, out of core the same way).

Synthetic CUB-shaped caches (D = 2048, 7 x 7 maps, V RCM views; 200 classes, 555 (NABirds' categories)
from --unwritten-from rows on) are written once per row count and reused:
- below --unwritten-from rows: every map written (random float16, gzip level 1 as extraction stores
  them; about 1 GB per 1,000 rows at V = 4). Everything is real: the scratch copy, its disk writes and
  the page cache.
- from --unwritten-from rows on (NABirds scale: 48,562 rows at V = 4 would be about 49 GB of maps, twice
  over with the scratch copy; this machine has less disk): the pooled features are written, the map
  arrays are created with the cache's own chunking and compression but their chunks are never written,
  so HDF5 returns the fill value (zeros) and the file stays small. Out of core, staging then still reads
  every map through h5py and checks it finite, a block of rows at a time, but all-zero blocks are left
  as holes in the scratch file (this benchmark replaces `MapStore.write` with a sparse writer, which
  also skips its free-space check); the epoch then reads the maps through the same `MapStore.read`
  positioned reads. Measured there: the process's peak RSS over the whole path and the epoch's
  seconds. NOT measured there: disk throughput (holes are read from no disk), gzip decompression
  (unwritten chunks are not decompressed), page-cache pressure of a 49 GB scratch file, and the
  in-memory path (49 GB of maps do not fit this machine's memory).
`--steps N` stops each epoch after its first N training batches (validation still runs in full) and
reports seconds per training step as well.
`--paired` adds the time comparison that a shared machine's changing load cannot skew: one process holds
both tables and trains the same batches from each, step by step, alternating which path goes first; the
first step of each (warm-up) is left out; the figures are training steps only (batch assembly + step).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DIM, MAP = 2048, (7, 7)
CUB_CLASSES, NABIRDS_CLASSES = 200, 555


def classes_for(rows: int, unwritten_from: int) -> int:
    return NABIRDS_CLASSES if rows >= unwritten_from else CUB_CLASSES


def cache_for(directory: Path, rows: int, views: int, unwritten_from: int) -> Path:
    """The synthetic training cache of `rows` rows (written once): maps written, or left unwritten from
    `unwritten_from` rows on."""
    from tests.support.synthetic import write_synthetic_cache

    unwritten = rows >= unwritten_from
    path = directory / f"maps_{rows}_v{views}{'_unwritten' if unwritten else ''}.h5"
    if not path.exists():
        t = time.perf_counter()
        if unwritten:
            write_unwritten_maps_cache(path, rows, views, classes_for(rows, unwritten_from))
        else:
            write_synthetic_cache(path, "train", num_classes=CUB_CLASSES, dim=DIM, num_views=views,
                                  kinds=("original", "rcm"), num_rows=rows, spatial_shape=MAP)
        print(f"  wrote {path.name} in {time.perf_counter() - t:.0f} s ({path.stat().st_size / 2**30:.2f} GiB on disk)",
              flush=True)
    return path


def write_unwritten_maps_cache(path: Path, rows: int, views: int, classes: int, block: int = 4096) -> None:
    """A complete synthetic cache whose pooled features are written and whose spatial maps are not: the map
    arrays exist with the cache's chunking and compression, and HDF5 reads their unwritten chunks as zeros."""
    from pipeline.schema import CacheLayout
    from pipeline.writer import CacheWriter
    from tests.support.synthetic import class_means, synthetic_config

    rng = np.random.default_rng(0)
    label = np.sort(np.arange(rows) % classes)
    names = [f"{c + 1:03d}.Synthetic_Bird_{c}" for c in range(classes)]
    perms = {"rcm": np.argsort(rng.random((rows, views, 49)), axis=-1).astype(np.int16)}
    layout = CacheLayout(config=synthetic_config("train", ("original", "rcm"), views), image_id=np.arange(1, rows + 1),
                         label=label, paths=[f"{names[c]}/img_{i}.jpg" for i, c in enumerate(label)],
                         class_names=names, feature_dim=DIM, permutations=perms, spatial_shape=MAP,
                         attrs={"backbone_weights": "synthetic"})
    layout.config["spatial"] = True
    means = class_means(classes, DIM, 0.35)
    writer = CacheWriter.open(path, layout, overwrite=True)
    for lo in range(0, rows, block):
        idx = np.arange(lo, min(lo + block, rows))
        original = means[label[idx]] + rng.standard_normal((len(idx), DIM), dtype=np.float32)
        rcm = original[:, None, :] + 0.5 * rng.standard_normal((len(idx), views, DIM), dtype=np.float32)
        writer.write(idx, {"features/original": original, "features/rcm": rcm})  # spatial/*: never written
    writer.finish()


def peak_rss_gib() -> float:
    """This process's peak resident set (VmHWM), GiB; ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def sparse_write(cls, shape, blocks, directory, what, tag, views=None, dtype=np.float16):  # noqa: ANN001
    """MapStore.write (which this stands in for), but an all-zero block becomes a hole in the scratch file (reads
    give zeros, no disk blocks) and the free-space check is skipped: for caches whose map chunks were never
    written. Pooled views (written, random) are copied whole as MapStore.write copies them."""
    fd, path = tempfile.mkstemp(prefix=f"heads-maps-{tag}-", suffix=".raw", dir=directory or tempfile.gettempdir())
    written = 0
    with os.fdopen(fd, "wb") as out:
        for block in blocks:
            raw = np.ascontiguousarray(block, dtype=dtype)
            if raw.view(np.uint8).any():
                out.write(raw.tobytes())
                written += raw.nbytes
            else:
                out.seek(raw.nbytes, os.SEEK_CUR)
        out.truncate()
    SPARSE_WRITTEN.append(written)
    return cls(Path(path), shape, views, dtype)


SPARSE_WRITTEN: list[int] = []


def limited(batches: Iterator, steps: int, seconds: list[float], rss: dict[str, float]) -> Iterator:
    """The first `steps` batches of an epoch (all when 0); appends the training loop's seconds to `seconds`
    and notes the peak RSS at its end (before validation) in `rss`."""
    start = time.perf_counter()
    yield from (batches if steps <= 0 else itertools.islice(batches, steps))
    seconds.append(time.perf_counter() - start)
    rss.setdefault("train", peak_rss_gib())


def child(cache_path: str, mode: str, args: argparse.Namespace) -> None:
    """One measurement in this process: prints one JSON line."""
    import torch

    import heads.training.train
    from heads.training.data import FeatureTable, MapStore, Scaler, check_finite, stratified_split
    from heads.methods.registry import METHODS
    from heads.training.step import resolve_precision, TrainOptions
    from heads.training.train import fit
    from pipeline.reader import read_cache

    if args.sparse_scratch:
        MapStore.write = classmethod(sparse_write)
    train_seconds: list[float] = []
    rss: dict[str, float] = {}
    real_train_batches = heads.training.train.train_batches
    heads.training.train.train_batches = lambda *a, **k: limited(real_train_batches(*a, **k), args.steps, train_seconds, rss)
    t = time.perf_counter()
    cache = read_cache(cache_path, kinds=["original"])  # as heads.training.data.load_caches: views with the table
    check_finite(cache)
    rss["read"] = peak_rss_gib()
    train_rows, val_rows = stratified_split(cache.label, 0.1, 0)
    torch.manual_seed(0)
    method = METHODS["dcl"]({"views": cache.config["views"], "spatial_kinds": cache.spatial_kinds},
                            cache.num_classes, cache.feature_dim, len(cache))
    table = FeatureTable.from_cache(cache, method.needs, "cpu", mode)
    load = time.perf_counter() - t
    rss["table"] = peak_rss_gib()
    scaler = Scaler.fit(cache.features["original"], train_rows)
    rss["scaler"] = peak_rss_gib()
    result = fit(method, table, train_rows, val_rows, scaler,
                 TrainOptions(epochs=args.epochs, batch_size=args.batch_size, lr=0.01,
                              precision=resolve_precision(args.precision, torch.device("cpu"))), progress=False)
    rss["validation"] = peak_rss_gib()
    steps = min(args.steps or 10**9, -(-len(train_rows) // args.batch_size))
    print(json.dumps({"rows": len(cache), "mode": mode, "load_s": load, "epoch_s": [r["seconds"] for r in result.history],
                      "train_s": train_seconds, "steps": steps, "rss": rss, "peak_rss_gib": peak_rss_gib(),
                      "in_memory": table.maps_in_memory, "views_in_memory": table.views_in_memory,
                      "scratch_bytes_written": sum(SPARSE_WRITTEN)}))


def paired(cache_path: str, args: argparse.Namespace) -> None:
    """Both paths in one process, step by step: the same batches (same rows, same drawn views) from a table
    with the maps in memory and one out of core, each trained by its own copy of the same network, the
    order alternating (ABBA) so that the shared machine's load falls on both alike. Prints one JSON line."""
    import copy

    import torch

    from heads.training.data import FeatureTable, Scaler, stratified_split, train_batches
    from heads.methods.registry import METHODS
    from heads.training.step import TrainOptions, resolve_precision
    from heads.training.steppers import HeadByHead
    from pipeline.reader import read_cache

    cache = read_cache(cache_path)
    train_rows, _ = stratified_split(cache.label, 0.1, 0)
    torch.manual_seed(0)
    base = METHODS["dcl"]({"views": cache.config["views"], "spatial_kinds": cache.spatial_kinds},
                          cache.num_classes, cache.feature_dim, len(cache))
    scaler, precision = Scaler.fit(cache.features["original"], train_rows), resolve_precision(args.precision, "cpu")
    runs = {}
    for mode in ("yes", "no"):
        table, method = FeatureTable.from_cache(cache, base.needs, "cpu", mode), copy.deepcopy(base)
        batches = train_batches(table, torch.from_numpy(train_rows), args.batch_size, scaler, torch.Generator().manual_seed(0),
                                set(method.needs))
        stepper = HeadByHead([method], [TrainOptions(lr=0.01, momentum=0.9, precision=precision)], torch.device("cpu"))
        runs[mode] = {"batches": batches, "method": method, "fetch": [], "step": [], "stepper": stepper}
    steps = min(args.steps or 10**9, -(-len(train_rows) // args.batch_size))
    for k in range(steps):
        for mode in (("yes", "no") if k % 2 == 0 else ("no", "yes")):
            run = runs[mode]
            run["method"].train()
            t = time.perf_counter()
            batch = next(run["batches"])
            run["fetch"].append(time.perf_counter() - t)
            t = time.perf_counter()
            head = run["stepper"].heads[0]
            head.tally = head.new_tally()
            run["stepper"].step([head], batch, 0, (10**9, 0), 1)  # heads.training.train's step: lr 0.01 throughout
            run["step"].append(time.perf_counter() - t)
    print(json.dumps({m: {"fetch": r["fetch"], "step": r["step"]} for m, r in runs.items()} | {"steps": steps}))


def run_child(argv: list[str], what: str) -> dict | None:
    """One measurement in its own process: its last stdout line as JSON, or None (the failure printed)."""
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode:
        print(f"  {what}: failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def report_paired(path: Path, args: argparse.Namespace) -> None:
    argv = [sys.executable, __file__, "--child", str(path), "paired", "--steps", str(args.steps),
            "--batch-size", str(args.batch_size), "--precision", args.precision]
    load = os.getloadavg()[0]
    r = run_child(argv, f"{path.name}, paired")
    if r is None:
        return
    r = {m: {k: v[1:] for k, v in r[m].items()} for m in ("yes", "no")} | {"steps": r["steps"] - 1}  # step 1: warm-up
    if r["steps"] < 1:
        print(f"  {path.name}, paired: too few training rows for a step after the warm-up", flush=True)
        return
    total = {m: sum(r[m]["fetch"]) + sum(r[m]["step"]) for m in ("yes", "no")}
    median = {m: float(np.median(np.add(r[m]["fetch"], r[m]["step"]))) for m in ("yes", "no")}
    print(f"  paired, {r['steps']} steps each after a warm-up step, alternating: in memory {total['yes']:.1f} s (batch assembly "
          f"{sum(r['yes']['fetch']):.1f} s), out of core {total['no']:.1f} s (batch assembly {sum(r['no']['fetch']):.1f} s): "
          f"out of core / in memory = {total['no'] / total['yes']:.3f} (median step {median['no']:.2f} / {median['yes']:.2f} s "
          f"= {median['no'] / median['yes']:.3f}); load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end", flush=True)


def measure(path: Path, mode: str, args: argparse.Namespace, sparse: bool) -> None:
    """One child process; prints its line."""
    argv = [sys.executable, __file__, "--child", str(path), mode, "--epochs", str(args.epochs), "--steps", str(args.steps),
            "--batch-size", str(args.batch_size), "--precision", args.precision] + (["--sparse-scratch"] if sparse else [])
    load = os.getloadavg()[0]
    r = run_child(argv, f"{path.name}, maps in memory {mode}")
    if r is None:
        return
    per_step = [s / r["steps"] for s in r["train_s"]]
    phases = ", ".join(f"{k} {v:.2f}" for k, v in r["rss"].items())
    where = lambda held: "in memory" if held else "out of core"  # noqa: E731
    print(f"  {r['rows']:>6} rows, maps {where(r['in_memory'])}, views {where(r['views_in_memory'])}: peak RSS "
          f"{r['peak_rss_gib']:.2f} GiB (after each phase: {phases}); load {r['load_s']:.0f} s; "
          f"epoch s {[round(s, 1) for s in r['epoch_s']]} (incl. validation); {r['steps']} training steps "
          f"{[round(s, 1) for s in r['train_s']]} s = {[round(s, 3) for s in per_step]} s/step"
          + (f"; scratch bytes written {r['scratch_bytes_written'] / 2**30:.2f} GiB" if sparse else "")
          + f"; load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--rows", default="5994,48562")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--modes", default="no,yes", help="which of out of core (no) / in memory (yes) to measure")
    ap.add_argument("--in-memory-rows", type=int, default=5994, help="measure in memory only up to this many rows")
    ap.add_argument("--unwritten-from", type=int, default=10000,
                    help="from this many rows on, the maps are left unwritten (see above)")
    ap.add_argument("--repeats", type=int, default=1, help="measure each mode this many times, alternating modes")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="training batches per epoch (0: the whole epoch)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--paired", action="store_true",
                    help="also time both paths step by step in one process, alternating (robust to a shared machine's load)")
    ap.add_argument("--child", nargs=2, metavar=("CACHE", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--sparse-scratch", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        (paired(args.child[0], args) if args.child[1] == "paired" else child(args.child[0], args.child[1], args))
        return
    from common import cpu_model

    directory = Path(args.cache_dir or tempfile.mkdtemp())
    directory.mkdir(parents=True, exist_ok=True)
    print(f"{cpu_model()}; scratch {tempfile.gettempdir()} ({shutil.disk_usage(tempfile.gettempdir()).free / 2**30:.0f} GiB "
          f"free); V = {args.views}; {args.epochs} epoch(s), batch {args.batch_size}, precision {args.precision}, "
          f"steps {args.steps or 'all'}", flush=True)
    for rows in (int(r) for r in args.rows.split(",")):
        path = cache_for(directory, rows, args.views, args.unwritten_from)
        modes = [m for m in args.modes.split(",") if m and (m != "yes" or rows <= args.in_memory_rows)]
        for _, mode in itertools.product(range(args.repeats), modes):
            measure(path, mode, args, sparse=rows >= args.unwritten_from)
        if args.paired and rows <= args.in_memory_rows:
            report_paired(path, args)


if __name__ == "__main__":
    main()
