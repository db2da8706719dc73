"""Is `study --plan` right about time? The CUB study's plan against measured stages, and the whole study's ETA.

1. Sweep and report stages: synthetic caches of CUB's shape (5,994 / 5,794 rows, 200 classes, D = 2048,
   jigsaw and RCM views x 4, 7 x 7 spatial maps: about 7 GB) stand in for the extracted ones. A reduced
   grid of studies/cub-label-efficiency.toml (each method at its first setting, K = 1 and all, one seed,
   few epochs) is planned with the plan's own calibration, then run through the study's own stages;
   estimate and measurement are printed per stage.
2. Extraction: a small sample dataset at the CUB spec's settings (224 px, 9 inputs per image, spatial maps)
   is extracted with extract-features (a subprocess, as the study does) and compared with the plan's
   estimate from the backbone probe. random-resnet50v2 (ResNet-50 v2, random weights) stands in for the
   TF-Hub model: the same architecture, available offline.
3. The whole CUB study's plan on this machine, per stage, from the same calibrations.

    flock /tmp/cpu-heavy.lock .venv/bin/python benchmarks/bench_study.py [--epochs 2] [--work DIR]
    .venv/bin/python benchmarks/bench_study.py --spec studies/demo.toml --parts ""   # a spec: planned twice, run

Prints figures; asserts nothing.

Measured (Intel Xeon, 2 cores, AMX/AVX512_BF16; other jobs kept the load average between 3 and 12 during the
run, so absolute times are inflated and the ratios noisy), --epochs 1, heads in bf16 (auto), extraction fp32:

    stage                                                       plan    measured  plan/measured
    extract train (40-image sample, 224 px, 9 inputs, spatial)  107.2 s   74.5 s    1.44x
    sweep (10 runs, CUB-shaped caches with 7x7 maps)            390.8 s  514.2 s    0.76x
    report                                                       36.9 s   39.4 s    0.94x

    the whole cub-label-efficiency study (330 runs): extract train 2 h 23 min, extract test 2 h 18 min,
    sweep 96 h 53 min, report 4 min 14 s; total 101 h 40 min on this machine under that load.

The extraction estimate was high because the probe's start-up included building the random backbone once
(the extraction then loaded it); the sweep's low because the calibration ran in a quieter minute than the
DCL runs (one DCL epoch at CUB scale: 101-119 s measured under load).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu_model  # noqa: E402

CUB_SPEC = ROOT / "studies" / "cub-label-efficiency.toml"
IMAGES_PER_CLASS = 10  # the extraction sample: 20 classes, about half of each class in the train split


def reduced_spec(work: Path, epochs: int):
    """The CUB spec, each method at its first grid setting, K = 1 and all, seed 0, `epochs` epochs."""
    from study.spec import load_spec, study_grid

    spec = load_spec(CUB_SPEC, out=work / "study")
    given = {k: v for k, v in spec.grid_given.items() if k in ("epochs", "batch_size", "precision")}
    given.update(labels_per_class=[(None, [1, None])], epochs=[(None, [epochs])])
    grid = study_grid(spec.path, spec.methods, given)
    extraction = dataclasses.replace(spec.extraction, features=work / "features")
    return dataclasses.replace(spec, epochs=epochs, labels_per_class=[1, None], seeds=[0], grid=grid, grid_given=given,
                               extraction=extraction)


def write_caches(features: Path) -> None:
    from tests.support.synthetic import write_synthetic_cache

    features.mkdir(parents=True, exist_ok=True)
    for split, rows, first in (("train", 5994, 1), ("test", 5794, 10_000)):
        path = features / f"{split}.h5"
        if not _complete(path):
            start = time.time()
            write_synthetic_cache(path, split, num_classes=200, num_rows=rows, dim=2048, num_views=4,
                                  spatial_shape=(7, 7), first_id=first, backbone_weights="synthetic", image_size=224)
            print(f"wrote {path} ({path.stat().st_size / 1e9:.1f} GB) in {time.time() - start:.0f} s", flush=True)


def _complete(path: Path) -> bool:
    import h5py

    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete"))
    except OSError:
        return False


def measure_sweep_and_report(spec) -> list[tuple[str, float, float]]:
    from study.plan.estimates import stage_seconds
    from study.plan.make import calibrate, make_plan
    from study.report.write import write_report
    from study.run.stages import stage_sweep

    plan = make_plan(spec)
    for state in plan.caches.values():  # synthetic caches: their config is not the spec's; use them as extracted
        state.status = "complete"
    start = time.time()
    calibrate(plan, backbone=False)
    print(f"heads calibration: {time.time() - start:.1f} s", flush=True)
    estimate = stage_seconds(plan)
    start = time.time()
    stage_sweep(plan, lambda m: None)
    sweep = time.time() - start
    start = time.time()
    write_report(plan, {"sweep": sweep})
    report = time.time() - start
    return [("sweep", estimate["sweep"], sweep), ("report", estimate["report"], report)]


def measure_extraction(work: Path, spec) -> tuple[float, float]:
    """A 20-class x IMAGES_PER_CLASS sample (its train split) extracted at the CUB spec's settings, against its estimate."""
    import subprocess

    from pipeline.sample import make_sample_dataset
    from study.plan.estimates import stage_seconds
    from study.plan.make import calibrate, make_plan
    from study.run.stages import extract_argv

    root = make_sample_dataset(work / "sample", classes=20, images_per_class=IMAGES_PER_CLASS, seed=0)
    small = dataclasses.replace(spec, data_root=root, download=False, backbone="random-resnet50v2",
                                model_cache=work / "models", precision="fp32",
                                extraction=dataclasses.replace(spec.extraction, features=work / "sample-features"))
    plan = make_plan(small)
    calibrate(plan, backbone=True)
    estimate = stage_seconds(plan)["extract train"]
    argv = extract_argv(plan, "train")
    start = time.time()
    subprocess.run([sys.executable, "-m", "extract", *argv], check=True, capture_output=True)
    return estimate, time.time() - start, plan.calibration


def spec_plan_vs_actual(spec_path: Path, work: Path, repeats: int = 2) -> None:
    """A study spec (the demo's, or another CUB-layout sample's) planned `repeats` times in a row (each calibrating
    afresh), then run through `study` into `work`: per stage the plans, what it took (study.json), the ratio.
    Its caches are reused when they exist (the spec's [extraction] features)."""
    import json
    import subprocess

    from study.plan.units import fmt_seconds

    out = work / f"study-{spec_path.stem}"
    shutil.rmtree(out, ignore_errors=True)
    plans = []
    for _ in range(repeats):
        (out / "calibration.json").unlink(missing_ok=True)
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "study", str(spec_path), "--out", str(out), "--plan"],
                              capture_output=True, text=True, check=True)
        sweep = next(line for line in proc.stderr.splitlines() + proc.stdout.splitlines() if "3 sweep" in line)
        plans.append((sweep.split("ETA", 1)[1].strip(), time.time() - start))
    subprocess.run([sys.executable, "-m", "study", str(spec_path), "--out", str(out)], capture_output=True, check=True)
    state = json.loads((out / "study.json").read_text())
    print(f"\n{spec_path.name}: plans in a row (sweep ETA, the plan's own seconds): "
          + "; ".join(f"{eta} ({took:.0f} s)" for eta, took in plans))
    print(f"{'stage':10s} {'planned':>12s} {'took':>12s} {'plan/took':>10s}")
    for stage, took in state["stage_seconds"].items():
        planned = state.get("stage_planned", {}).get(stage)
        ratio = f"{planned / took:9.2f}x" if planned and took > 0.5 else "        -"
        print(f"{stage:10s} {fmt_seconds(planned):>12s} {fmt_seconds(took):>12s} {ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", action="append", default=[],
                    help="also a study spec planned twice and run (e.g. studies/demo.toml); repeatable")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of each run of the reduced grid")
    ap.add_argument("--work", default=None, help="directory for the synthetic caches (kept; about 7 GB)")
    ap.add_argument("--parts", default="extract,sweep,whole",
                    help="what to measure: extract (the sample's extraction), sweep (sweep and report of the reduced "
                         "grid, writes the 7 GB caches), whole (the whole study's plan)")
    args = ap.parse_args()
    parts = set(p for p in args.parts.split(",") if p)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-study-"))
    print(f"machine: {cpu_model()}", flush=True)
    for spec_path in args.spec:
        spec_plan_vs_actual(Path(spec_path), work)
    if not parts:
        return
    spec = reduced_spec(work, args.epochs)
    rows, calibration = [], None
    if "sweep" in parts:
        write_caches(spec.extraction.features)
        shutil.rmtree(work / "study", ignore_errors=True)
        rows = measure_sweep_and_report(spec)
    if "extract" in parts or "whole" in parts:
        est, measured, calibration = measure_extraction(work, spec)
        rows.insert(0, (f"extract train ({20 * IMAGES_PER_CLASS}-image sample, its train split; 224 px, 9 inputs, maps)", est, measured))
    print(f"\nreduced CUB grid: {len(spec.methods)} methods x K 1, all x seed 0, {args.epochs} epochs "
          "(synthetic CUB-shaped caches)")
    print(f"{'stage':70s} {'plan':>9s} {'measured':>9s} {'plan/measured':>14s}")
    for name, e, m in rows:
        print(f"{name:70s} {e:8.1f}s {m:8.1f}s {e / m:13.2f}x")
    if "whole" in parts:
        whole(calibration, work)


def whole(backbone_calibration, work: Path) -> None:
    """The whole CUB study's plan on this machine (heads calibrated at CUB shapes, backbone from the probe)."""
    from study.plan.estimates import stage_seconds
    from study.plan.make import calibrate, make_plan
    from study.plan.units import fmt_seconds
    from study.spec import load_spec

    spec = load_spec(CUB_SPEC, out=work / "whole")
    spec = dataclasses.replace(spec, extraction=dataclasses.replace(spec.extraction, features=work / "none"))
    plan = make_plan(spec)
    calibrate(plan, backbone=False)
    plan.calibration.backbone_inputs_per_s = backbone_calibration.backbone_inputs_per_s
    plan.calibration.backbone_startup_s = backbone_calibration.backbone_startup_s
    times = stage_seconds(plan)
    print(f"\nthe whole study ({CUB_SPEC.name}: {len(plan.runs)} runs), extrapolated on this machine:")
    for stage, seconds in times.items():
        print(f"  {stage:14s} {fmt_seconds(seconds)}")
    print(f"  {'total':14s} {fmt_seconds(sum(t or 0 for t in times.values()))}")


if __name__ == "__main__":
    main()
