"""PIRL in the paper's form (g over nine patch features) vs the report's form (g over one whole jigsaw
feature) vs the same-network baseline, at few labels, on a synthetic cache built so that patches could help.

    .venv/bin/python benchmarks/pirl_paper_synthetic.py [--out DIR] [--seeds 0-2] [--epochs 10] [--batch-size 32]

Synthetic caches (no images, tests.support.synthetic): C classes; each image's original feature is its
class mean plus isotropic noise, with class means small against the noise (`--separation`), so one or
two labelled images per class reveal the class directions badly. Each view's jigsaw feature and each of
its nine patch features keep the class (the patches through a class-and-cell mean of scale
`--patch-separation`, cut from the cell the stored permutation names) and share none of the image's
own noise (`--view-shared 0`): what matching an image to its views can teach is where the class is.
Both PIRL forms run with --jigsaw-head shared (the report's separate head cannot reach the classifier
on frozen features). Two sweeps (one per --pirl-form), each with the baseline `none`, over K = 1, 2,
5, all labelled rows per class, the same seeds (so the `none` runs are the same runs); each prints its
label-efficiency table with paired intervals against `none`. Prints what it measured, whichever way.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                    platform.processor())
    except OSError:
        return platform.processor()


def paper_vs_report(sweeps: Path, seeds: str) -> None:
    """Paired test top-1 differences paper - report per K (same seed: same split, labelled rows, init), t interval."""
    import json

    import numpy as np
    from scipy import stats

    print("\n=== paper form - report form, PIRL, paired by seed (test top-1, points) ===")
    for k in ("1", "2", "5", "all"):
        diffs = []
        for seed in _seeds(seeds):
            top1 = [json.loads((sweeps / f"form-{form}" / "runs" / f"pirl_labels-per-class={k}_seed={seed}" /
                                "metrics.json").read_text())["test"]["top1"] for form in ("paper", "report")]
            diffs.append(100 * (top1[0] - top1[1]))
        d = np.asarray(diffs)
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        print(f"K = {k:>3}: {d.mean():+.2f} [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}] over {len(d)} seeds "
              f"({', '.join(f'{x:+.1f}' for x in d)})")


def _seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/pirl-paper-synthetic"))
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--separation", type=float, default=0.3)
    ap.add_argument("--patch-separation", type=float, default=0.6)
    ap.add_argument("--view-shared", type=float, default=0.0)
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("--epochs", default="10")
    ap.add_argument("--batch-size", default="32", help="rows per step (the training split is ~180 rows)")
    ap.add_argument("--compare-only", action="store_true", help="only the paired paper - report table of --out")
    args = ap.parse_args()
    from tests.support.synthetic import write_synthetic_cache

    if args.compare_only:
        paper_vs_report(args.out / "sweeps", args.seeds)
        return

    print(f"CPU: {cpu_model()}")
    args.out.mkdir(parents=True, exist_ok=True)
    kw = dict(num_classes=args.classes, dim=args.dim, separation=args.separation, view_shared=args.view_shared,
              patch_separation=args.patch_separation, kinds=("original", "jigsaw", "patches"))
    train = write_synthetic_cache(args.out / "train.h5", "train", per_class=args.per_class, seed=0, **kw)
    test = write_synthetic_cache(args.out / "test.h5", "test", per_class=30, seed=1, first_id=100_000, **kw)
    for form in ("report", "paper"):
        cmd = [str(Path(sys.executable).with_name("sweep-heads")), "--train", str(train), "--test", str(test),
               "--out", str(args.out / "sweeps"), "--name", f"form-{form}", "--aux", "none,pirl",
               "--pirl-form", form, "--jigsaw-head", "shared", "--labels-per-class", "1,2,5,all",
               "--val-per-class", "1", "--aux-weight", "1", "--seeds", args.seeds, "--epochs", args.epochs,
               "--batch-size", args.batch_size,
               "--quiet"]
        print(f"\n=== --pirl-form {form} ===\ncommand: " + " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)
    paper_vs_report(args.out / "sweeps", args.seeds)


if __name__ == "__main__":
    main()
