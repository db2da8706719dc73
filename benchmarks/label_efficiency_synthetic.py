"""Does PIRL with unlabelled rows beat the baseline at few labels, on a cache built so that it could?

    .venv/bin/python benchmarks/label_efficiency_synthetic.py [--out DIR] [--seeds 0-4]

Synthetic caches (no images): C classes with Gaussian class means; each image's feature is its class
mean plus isotropic noise. Its jigsaw views keep the class mean but only a share `--view-shared` of
the image's own noise (fresh noise for the rest), so an (image, view) pair agrees on the class and
little else: what PIRL's instance discrimination can learn from unlabelled rows is which directions
carry the class, which one or two labelled images per class reveal badly. Then one sweep-heads over
K = 1, 2, 5, all labels per class, validation one image per class, and its label-efficiency table.
Prints what it measured, whichever way it goes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/label-efficiency"))
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--separation", type=float, default=0.3)
    ap.add_argument("--view-shared", type=float, default=0.0)
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--epochs", default="30")
    args = ap.parse_args()
    import common  # noqa: F401  (puts the repository root on sys.path)
    from tests.support.synthetic import write_synthetic_cache

    args.out.mkdir(parents=True, exist_ok=True)
    kw = dict(num_classes=args.classes, dim=args.dim, separation=args.separation, view_shared=args.view_shared,
              kinds=("original", "jigsaw"))
    train = write_synthetic_cache(args.out / "train.h5", "train", per_class=args.per_class, seed=0, **kw)
    test = write_synthetic_cache(args.out / "test.h5", "test", per_class=50, seed=1, first_id=100_000, **kw)
    cmd = [str(Path(sys.executable).with_name("sweep-heads")), "--train", str(train), "--test", str(test),
           "--out", str(args.out / "sweeps"), "--name", f"shared{args.view_shared}", "--aux", "none,linear,pirl",
           "--labels-per-class", "1,2,5,all", "--val-per-class", "1", "--aux-weight", "0.1,1,3",
           "--classifier-input", "embedding,hidden", "--jigsaw-head", "separate,shared", "--seeds", args.seeds, "--epochs", args.epochs, "--quiet"]
    print("command: " + " ".join(cmd[1:]))
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
