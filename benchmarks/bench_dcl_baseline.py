"""DCL's same-network baseline against `none`: test top-1 of none, dcl-none and dcl with each `--dcl-network`
(pooled, maps) on samples of several styles, per seed and K. Prints a table; asserts nothing.

    .venv/bin/python benchmarks/bench_dcl_baseline.py [--work DIR] [--seeds 0,1] [--samples NAME,...]

Samples (written once under --work, reused on a rerun):
  pictures-8x14   make-sample-dataset --classes 8 --images-per-class 14 --seed 0 (the issue's weak-cue shape), random
                  ResNet-50 v2 at 128 px (4 x 4 maps, RCM grid 4, k 1, 2 views), as studies/demo.toml extracts
  pictures-10x16  the same at --classes 10 --images-per-class 16 --seed 7
  real-shaped-*   tests.support.synthetic's post-ReLU caches (a shared channel mean, heavy-tailed channel scales),
                  8 classes, D = 512, 4 x 4 maps, 20 training and 60 test rows per class; separation 0.08 (weak),
                  0.12 (mid), 0.25 (strong)
  digits          scikit-learn's 1,797 8 x 8 handwritten digits (in its wheel) as an image folder, 64 px PNG,
                  stratified 70/30 (1,257 / 540), random ResNet-50 v2 at 96 px (3 x 3 maps, RCM grid 3)

Every sample trains through `sweep-heads` with the demo's protocol (12 epochs, batch 32, one validation row per
class, fp32, defaults otherwise) at K = 1 and K = all: none, dcl-none and dcl with --dcl-network pooled, then
dcl-none and dcl with --dcl-network maps (DCL's network before the option existed), and dcl-none (pooled) at
--dcl-hidden 128, the width studies/demo.toml and the CUB study sweep. The test top-1 of each selected run is read
from its metrics.json. `--protocol last` trains the same runs with no validation rows and scores the last epoch:
one validation row per class makes the selected epoch a coin toss on ten images, which this removes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_model  # noqa: E402

BIN = Path(sys.executable).parent
PROTOCOL = ["--epochs", "12", "--batch-size", "32", "--val-per-class", "1", "--device", "cpu", "--precision", "fp32",
            "--labels-per-class", "1,all", "--quiet"]
PICTURES = {"pictures-8x14": (8, 14, 0), "pictures-10x16": (10, 16, 7)}
REAL_SHAPED = {"real-shaped-weak": 0.08, "real-shaped-mid": 0.12, "real-shaped-strong": 0.25}
SAMPLES = [*PICTURES, *REAL_SHAPED, "digits"]
COLUMNS = [("none", "pooled"), ("dcl-none", "pooled"), ("dcl", "pooled"), ("dcl-none", "maps"), ("dcl", "maps"),
           ("dcl-none", "pooled-128")]  # the last: --dcl-hidden 128, the width the demo's and CUB's grids use


def run(cmd: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def extract(root: Path, out: Path, dataset: str, size: int, grid: int, models: Path) -> None:
    for split in ("train", "test"):
        if not (out / f"{split}.h5").is_file():
            run([str(BIN / "extract-features"), "--dataset", dataset, "--data-root", str(root), "--split", split,
                 "--out", str(out / f"{split}.h5"), "--backbone", "random-resnet50v2", "--model-cache", str(models),
                 "--image-size", str(size), "--views", "original,rcm", "--num-views", "2", "--rcm-grid", str(grid),
                 "--rcm-k", "1", "--spatial", "--batch-size", "60", "--precision", "fp32", "--seed", "0", "--quiet"])


def write_digits(root: Path) -> None:
    """scikit-learn's digits as ROOT/<train|test>/digit_<d>/<index>.png, 64 px, a stratified 70/30 split."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if (root / "test").is_dir():
        return
    d = load_digits()
    train, test = train_test_split(np.arange(len(d.target)), test_size=0.3, stratify=d.target, random_state=0)
    for split, rows in (("train", train), ("test", test)):
        for i in rows:
            path = root / split / f"digit_{d.target[i]}" / f"{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = (d.images[i] / 16.0 * 255).astype(np.uint8)
            Image.fromarray(pixels, "L").resize((64, 64), Image.NEAREST).save(path)


def prepare(name: str, work: Path) -> Path:
    """The directory holding the sample's train.h5 and test.h5 (written when missing)."""
    out = work / "features" / name
    if name in PICTURES:
        classes, per_class, seed = PICTURES[name]
        pictures = work / "pictures" / name
        if not (pictures / "CUB_200_2011").is_dir():
            run([str(BIN / "make-sample-dataset"), "--out", str(pictures), "--classes", str(classes),
                 "--images-per-class", str(per_class), "--seed", str(seed)])
        extract(pictures / "CUB_200_2011", out, "cub", 128, 4, work / "models")
    elif name in REAL_SHAPED:
        from tests.support.synthetic import write_synthetic_cache

        kw = dict(num_classes=8, dim=512, num_views=2, features="resnet", spatial_shape=(4, 4),
                  separation=REAL_SHAPED[name])
        if not (out / "test.h5").is_file():
            write_synthetic_cache(out / "train.h5", "train", per_class=20, seed=0, **kw)
            write_synthetic_cache(out / "test.h5", "test", per_class=60, seed=1, first_id=10_000, **kw)
    elif name == "digits":
        write_digits(work / "pictures" / "digits")
        extract(work / "pictures" / "digits", out, "folder", 96, 3, work / "models")
    else:
        raise SystemExit(f"--samples: unknown sample {name!r} (one of {', '.join(SAMPLES)})")
    return out


def sweep(features: Path, work: Path, name: str, auxes: str, network: str, seeds: str) -> Path:
    """One sweep-heads run (skipped when its directory is complete); its directory."""
    directory = work / "sweeps" / name
    network, _, hidden = network.partition("-")
    if not (directory / "summary.csv").is_file():
        run([str(BIN / "sweep-heads"), "--train", str(features / "train.h5"), "--test", str(features / "test.h5"),
             "--aux", auxes, "--dcl-network", network, *(["--dcl-hidden", hidden] if hidden else []),
             "--seeds", seeds, *PROTOCOL, "--out", str(work / "sweeps"), "--name", name])
    return directory


def last_epoch(features: Path, work: Path, name: str, seeds: list[int]) -> dict[tuple[str, str, str, int], tuple]:
    """The same runs with no validation rows (--val-fraction 0: the last epoch is kept, nothing is selected), trained
    in this process through heads.training.experiment.run_experiment: (aux, network, K, seed) -> (test top-1 %, health)."""
    import torch

    from heads.spec import RunSpec
    from heads.training.experiment import Caches, run_experiment
    from heads.options import defaults

    out, caches = {}, None
    for aux, network in COLUMNS:
        network, _, hidden = network.partition("-")
        for k in ("1", "all"):
            for seed in seeds:
                run_dir = work / "last" / name / f"{aux}-{network}{hidden}-{k}-{seed}"
                if not (run_dir / "metrics.json").is_file():
                    if caches is None:
                        caches = Caches.load(str(features / "train.h5"), str(features / "test.h5"),
                                             ["none", "dcl-none", "dcl"], torch.device("cpu"), log=lambda _: None)
                    extra = {"dcl_network": network, **({"dcl_hidden": int(hidden)} if hidden else {})}
                    options = {**defaults(aux), "epochs": 12, "batch_size": 32, "precision": "fp32", "val_fraction": 0.0,
                               "val_per_class": None, "standardize": True, "labels_per_class": k, "seed": seed,
                               "aux": aux, **(extra if aux != "none" else {})}
                    run_experiment(caches, RunSpec.from_record(options), run_dir, score_test=True)
                metrics = json.loads((run_dir / "metrics.json").read_text())
                out[(aux, "pooled" if aux == "none" else network + ("-" + hidden if hidden else ""), k, seed)] = (
                    100 * metrics["test"]["top1"], metrics["health"]["state"])
    return out


def test_top1(directory: Path) -> dict[tuple[str, str, int], tuple[float, str]]:
    """(aux, K, seed) -> (test top-1 %, health) of the selected runs of a sweep."""
    out = {}
    for entry in json.loads((directory / "selection.json").read_text())["selected"]:
        for seed, run_dir, health in zip(entry["seeds"], entry["runs"], entry["health"]):
            metrics = json.loads((directory / run_dir / "metrics.json").read_text())
            out[(entry["aux"], str(entry["labels_per_class"]), int(seed))] = (100 * metrics["test"]["top1"], health)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/bench_dcl_baseline", help="where samples, caches and sweeps are kept")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--samples", default=",".join(SAMPLES))
    parser.add_argument("--protocol", choices=["demo", "last"], default="demo",
                        help="demo: sweep-heads, one validation row per class selects the epoch; last: no validation "
                             "rows, the last of the 12 epochs is scored (no selection noise)")
    args = parser.parse_args()
    work = Path(args.work)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"CPU: {cpu_model()}")
    rows, unhealthy = [], []
    for name in args.samples.split(","):
        t = time.perf_counter()
        features = prepare(name, work)
        found: dict[tuple[str, str, str, int], tuple[float, str]] = {}
        if args.protocol == "last":
            found = last_epoch(features, work, name, seeds)
        for network, auxes in (("pooled", "none,dcl-none,dcl"), ("maps", "dcl-none,dcl"), ("pooled-128", "dcl-none")):
            if args.protocol == "last":
                break
            for (aux, k, seed), value in test_top1(sweep(features, work, f"{name}-{network}", auxes, network,
                                                         args.seeds)).items():
                found[(aux, network, k, seed)] = value
        print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        for k in ("1", "all"):
            for seed in seeds:
                cells = [found.get((aux, "pooled" if aux == "none" else net, k, seed)) for aux, net in COLUMNS]
                unhealthy += [f"{name} K={k} seed {seed} {aux} {net}: {c[1]}" for (aux, net), c in zip(COLUMNS, cells)
                              if c is not None and c[1] != "ok"]
                rows.append((name, k, str(seed), [None if c is None else c[0] for c in cells]))
    header = ["sample", "K", "seed", *(f"{a}" if a == "none" else f"{a} {n}" for a, n in COLUMNS),
              "Δ dcl-none pooled − none", "Δ dcl-none maps − none"]
    print("\nTest top-1 (%), " + ("the demo's protocol (12 epochs, batch 32, 1 validation row per class selects the "
                                  "epoch)" if args.protocol == "demo" else "12 epochs, batch 32, no validation rows: the "
                                  "last epoch") + "\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))

    def cell(x: float | None, signed: bool = False) -> str:
        return "-" if x is None else f"{x:+.1f}" if signed else f"{x:.1f}"

    def delta(v: list, i: int) -> float | None:
        return None if v[0] is None or v[i] is None else v[i] - v[0]

    by_sample: dict[tuple[str, str], list[list]] = {}
    for name, k, seed, values in rows:
        by_sample.setdefault((name, k), []).append(values)
        print(f"| {name} | {k} | {seed} | " + " | ".join(cell(v) for v in values)
              + f" | {cell(delta(values, 1), True)} | {cell(delta(values, 3), True)} |")
    print("\nMean over seeds\n")
    print("| " + " | ".join(h for h in header if h != "seed") + " |")
    print("|" + "---|" * (len(header) - 1))
    for (name, k), group in by_sample.items():
        means = [statistics.mean(g[i] for g in group) if all(g[i] is not None for g in group) else None
                 for i in range(len(COLUMNS))]
        print(f"| {name} | {k} | " + " | ".join(cell(v) for v in means)
              + f" | {cell(delta(means, 1), True)} | {cell(delta(means, 3), True)} |")
    print("\nRuns not healthy: " + ("; ".join(unhealthy) if unhealthy else "none"))


if __name__ == "__main__":
    main()
