"""Does the extraction precision change what stage 2 learns? Extract the demo data (make demo's sample:
20 classes x 20 images, 224 px, random-resnet50v2) once per precision, then train the same heads with
the same seeds on each pair of caches and compare test top-1 with the seed-to-seed spread.
Prints a table; asserts nothing. Run it under the CPU lock: it runs the backbone over 400 images per
precision (about 3 minutes on 2 cores) and 2 x 3 x len(seeds) head trainings.

    .venv/bin/python benchmarks/bench_precision_heads.py [--precision fp32,bf16] [--seeds 0,1,2,3,4]
        [--data-root data/CUB_200_2011 --backbone <TF-Hub URL or SavedModel> --work data/bench-precision-cub]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


from common import feature_cosines

BIN = Path(sys.executable).parent
DEMO_ROOT = "data/sample/CUB_200_2011"
HEADS = [("none", ["--aux", "none"]), ("pirl w=0.1", ["--aux", "pirl", "--aux-weight", "0.1"]), ("pirl w=1 (default)", ["--aux", "pirl"])]


def run(*cmd: str) -> None:
    subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=DEMO_ROOT, help="the default is made with make demo's settings when missing")
    ap.add_argument("--work", default="data/bench-precision", help="caches and runs go here")
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--backbone", default="random-resnet50v2", help="any extract-features --backbone")
    ap.add_argument("--model-cache", default="data/models")
    args = ap.parse_args()
    precisions, seeds = args.precision.split(","), [int(s) for s in args.seeds.split(",")]
    root, work = Path(args.data_root), Path(args.work)
    if not (root / "images.txt").is_file() and args.data_root == DEMO_ROOT:  # only the demo sample is made here
        run(BIN / "make-sample-dataset", "--out", root.parent, "--classes", 20, "--images-per-class", 20)
    for p in precisions:
        for split in ("train", "test"):
            run(BIN / "extract-features", "--data-root", root, "--split", split, "--out", work / p / f"{split}.h5",
                "--backbone", args.backbone, "--precision", p, "--model-cache", args.model_cache, "--quiet")
    base = precisions[0]
    for p in precisions[1:]:
        for split in ("train", "test"):
            cos = feature_cosines(work / base / f"{split}.h5", work / p / f"{split}.h5")
            print(f"feature cosine {p} vs {base}, {split}: min {cos.min():.6f} mean {cos.mean():.6f} ({len(cos)} vectors)")
    top1: dict[tuple[str, str, int], float] = {}
    for i, (name, opts) in enumerate(HEADS):
        for p in precisions:
            for seed in seeds:
                out = work / "runs" / f"{p}-heads{i}-seed{seed}"
                run(BIN / "train-heads", "--train", work / p / "train.h5", "--test", work / p / "test.h5",
                    "--data-root", root, "--out", out, "--epochs", 30, "--batch-size", 32, "--seed", seed, "--quiet",
                    *opts)
                metrics = json.loads(next(out.glob("*/metrics.json")).read_text())
                top1[name, p, seed] = 100 * metrics["test"]["top1"]
    print(f"\ntest top-1 (%), train-heads --epochs 30 --batch-size 32, seeds {args.seeds}")
    print(f"{'heads':20s} {'seed':>4s} " + " ".join(f"{p:>7s}" for p in precisions)
          + "".join(f" {p + '-' + base:>10s}" for p in precisions[1:]))
    for name, _ in HEADS:
        for seed in seeds:
            row = [top1[name, p, seed] for p in precisions]
            print(f"{name:20s} {seed:4d} " + " ".join(f"{v:7.1f}" for v in row)
                  + "".join(f" {v - row[0]:+10.1f}" for v in row[1:]))
        for p in precisions:
            vals = [top1[name, p, s] for s in seeds]
            print(f"{name:20s} {p}: mean {statistics.mean(vals):.2f}, sd over seeds {statistics.stdev(vals):.2f}")
        for p in precisions[1:]:
            diffs = [top1[name, p, s] - top1[name, base, s] for s in seeds]
            print(f"{name:20s} {p} - {base}: mean {statistics.mean(diffs):+.2f}, sd {statistics.stdev(diffs):.2f}, "
                  f"range {min(diffs):+.1f}..{max(diffs):+.1f}")


if __name__ == "__main__":
    main()
