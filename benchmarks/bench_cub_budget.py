"""Stage 2 of the CUB study within budget? The plan of studies/cub-label-efficiency.toml (successive halving,
the cheaper DCL, linear weight-decay banks) against the full grid at the default DCL, on this machine and
projected to the 2-core AMD EPYC without AVX-512 (fp32) where the issue measured "about 20 h".

    flock /tmp/cpu-heavy.lock .venv/bin/python benchmarks/bench_cub_budget.py

How: the study's own cost model (study.plan.make / study.plan.costs) calibrated here in fp32 (that EPYC has no bf16) on
CUB's shapes (5,994 / 5,794 rows, 200 classes, D = 2048, 4 views, 7 x 7 maps). Two plans:
  - "today's full grid": search = "grid", DCL and dcl-none at the default adapter (hidden 512, no PCA),
    every linear run alone;
  - "the CUB spec": as shipped (halving, --dcl-hidden 128 --dcl-pca 256, linear banks).
Projection to the EPYC: each run's estimate times the ratio of a recorded EPYC epoch to this machine's
estimate of the same epoch at the default settings, measured in this run: a `--aux pirl` epoch (2.2 s
there, pooled methods) and a `--aux dcl` epoch with spatial maps (28.9 s there, dcl and dcl-none), both
fp32 at CUB scale (FACTS: "Turn 3 machine"). The cheaper settings' own cost comes from the calibration
here, so the projection assumes they scale between the machines as the default ones do. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu_model  # noqa: E402

CUB_SPEC = ROOT / "studies" / "cub-label-efficiency.toml"
EPYC_EPOCH_S = {"pirl": 2.2, "dcl+spatial": 28.9}  # recorded on the EPYC without AVX-512, fp32, CUB scale
SPATIAL = ("dcl", "dcl-none")


def spec_variant(full_grid: bool):
    """The CUB spec in fp32; full_grid: search = grid and DCL's default adapter (no --dcl-hidden / --dcl-pca)."""
    from study.spec import load_spec, study_grid

    spec = load_spec(CUB_SPEC, out=Path("/nonexistent/bench-cub-budget"))
    given = dict(spec.grid_given)
    given["precision"] = [(None, ["fp32"])]
    if full_grid:
        given = {k: v for k, v in given.items() if k not in ("dcl_hidden", "dcl_pca")}
    grid = study_grid(spec.path, spec.methods, given)
    return dataclasses.replace(spec, heads_precision="fp32", grid_given=given, grid=grid,
                               search="grid" if full_grid else spec.search)


def reference_epochs(plan) -> dict[str, float]:
    """This machine's estimate of the recorded EPYC epochs (pirl, and dcl with maps at the default adapter, all
    rows) from the full-grid plan's calibration."""
    from study.plan.costs import epoch_seconds, method_key

    rows = plan.train_rows
    cal = plan.calibration.methods
    return {"pirl": epoch_seconds(cal[method_key("pirl", False)], rows),
            "dcl+spatial": epoch_seconds(cal[method_key("dcl", True)], rows)}


def calibrated_pair() -> dict[str, object]:
    """Both plans calibrated back to back; the spec's pooled methods (the same settings as the full grid's) take
    the full grid's figures, so only the cheaper DCL is measured apart and load drift between them matters less."""
    from study.plan.costs import method_key
    from study.plan.make import calibrate, make_plan

    full, spec = make_plan(spec_variant(True)), make_plan(spec_variant(False))
    calibrate(full, backbone=False)
    calibrate(spec, backbone=False)
    for aux in ("none", "linear", "pirl"):
        spec.calibration.methods[method_key(aux, False)] = full.calibration.methods[method_key(aux, False)]
    return {"today's full grid": full, "the CUB spec": spec}


def per_method(plan, factor: dict[str, float] | None, banks: bool) -> dict[str, float]:
    """Sum of the runs' estimates per method (times the EPYC factor of its kind when given); banks: the linear
    weight-decay grid in one pass per seed and K (study.plan.make.share_banks), else every run alone."""
    from study.plan.estimates import run_estimate, stage_seconds

    stage_seconds(plan)  # fills run.seconds, banks shared
    if not banks:
        for run in plan.runs:
            run.seconds = run_estimate(plan, run)
    out: dict[str, float] = {}
    for run in plan.runs:
        f = 1.0 if factor is None else factor["dcl+spatial" if run.aux in SPATIAL else "pirl"]
        out[run.aux] = out.get(run.aux, 0.0) + run.seconds * f
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="calibrations of both plans; medians are printed")
    args = ap.parse_args()
    from study.plan.units import fmt_seconds

    print(f"# {cpu_model()}: heads in fp32, CUB shapes; {args.repeats} calibrations, medians", flush=True)
    table: dict[str, dict[str, list[tuple[float, float]]]] = {}
    runs: dict[str, dict[str, int]] = {}
    for i in range(args.repeats):
        plans = calibrated_pair()
        here = reference_epochs(plans["today's full grid"])
        factor = {k: EPYC_EPOCH_S[k] / here[k] for k in EPYC_EPOCH_S}
        print(f"calibration {i + 1}: reference epochs here pirl {here['pirl']:.2f} s, default dcl with maps "
              f"{here['dcl+spatial']:.2f} s -> EPYC factors {factor['pirl']:.2f}x, {factor['dcl+spatial']:.2f}x", flush=True)
        for name, plan in plans.items():
            banks = name != "today's full grid"
            mine, epyc = per_method(plan, None, banks), per_method(plan, factor, banks)
            runs[name] = {aux: sum(r.aux == aux for r in plan.runs) for aux in plan.spec.methods}
            for aux in [*plan.spec.methods, "stage 2"]:
                pair = (sum(mine.values()), sum(epyc.values())) if aux == "stage 2" else (mine[aux], epyc[aux])
                table.setdefault(name, {}).setdefault(aux, []).append(pair)
    for name, rows in table.items():
        print(f"\n{name} ({sum(runs[name].values())} runs):")
        print(f"  {'method':<10} {'runs':>5} {'here':>14} {'EPYC-fp32 (projected)':>24}")
        for aux, pairs in rows.items():
            here_s = statistics.median(p[0] for p in pairs)
            epyc_s = statistics.median(p[1] for p in pairs)
            n = runs[name].get(aux, "")
            print(f"  {aux:<10} {n:>5} {fmt_seconds(here_s):>14} {fmt_seconds(epyc_s):>24}")
        print("  stage 2 by calibration, EPYC-fp32 projected: " + ", ".join(fmt_seconds(p[1]) for p in rows["stage 2"]))


if __name__ == "__main__":
    main()
