"""Could the study's experiment find its effect? Issue 33's adequacy targets measured on several samples.

For each sample (real images and synthetic CUB-layout samples of different seeds and sizes) this writes a study
spec in the demo's protocol (studies/demo.toml: methods none, linear, pirl, dcl, dcl-none; K = 1, 5, all as
the sample allows; 2+ seeds; one validation image per class; the demo's grid and epoch ceiling, read from
studies/demo.toml), runs `study SPEC` (a subprocess;
a rerun resumes it and reuses every finished run), and prints one table per sample, read from the study's own
files (runs.csv, selection.json, each selected run's predictions.csv and history.csv):

- per K, seed and method the selected setting's test top-1 (%), from predictions.csv;
- dcl-none minus none (DCL's same-network baseline against the MLP head; target: within 5 points);
- at K = all, the linear probe against scikit-learn's LogisticRegression on the same cached pooled features
  (tests/support/reference_probe.py: standardised with training rows' statistics, C chosen on a held-out 20% of
  the TRAINING rows, refit on all of them; target: within 1 point on every seed);
- the selected epoch / the epochs the run trained (history.csv rows) / the spec's ceiling;
- runs.csv's health values counted (under-trained and any other state than ok).

Samples:
    digits  REAL images: scikit-learn's handwritten digits (pipeline.datasets.digits), all 1,797 (1,257 train /
            540 test) as 64-px PNGs, random-resnet50v2 at 96 px (3x3 maps, RCM grid 3)
    cub-s1  make-sample-dataset (CUB layout) --seed 1, 10 classes x 16 images, 128 px (4x4 maps): the demo's size
    cub-s2  --seed 2, 20 classes x 14 images, 128 px: more classes, fewer images each
    weak    --seed 3, 8 classes x 14 images, 128 px: a weak-cue sample (6 labelled images per class at K = all)
--quick: K = all only, 6 epochs, one value per grid axis, digits subsampled to 30 per class at 64 px (2x2 maps).

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_adequacy.py \\
        [--samples digits,cub-s1,cub-s2,weak] [--seeds 0,1] [--out DIR] [--quick] [--epochs N] [--heads-extra 'k = v']

Prints figures; asserts nothing. The study's columns and files may grow (health states, stop rules, selection
rules): every field is read defensively, and what a file lacks prints as "-".

Measured before the issue-33 changes (main at 594088b; Intel(R) Xeon(R) Processor, 2 cores, avx512_bf16 and
amx_bf16, load average 4-7 from other jobs), `--quick --samples digits` then `--quick --samples weak`, seeds 0, 1,
ceiling 6 epochs, K = all (test top-1 %, seed 0 / seed 1):

    sample            none          linear        pirl          dcl           dcl-none      sklearn (C)
    digits 10 x 30    91.11/93.33   81.11/88.89   90.00/90.00   87.78/91.11   83.33/91.11   88.89 (0.1) / 88.89 (10)
    weak 8 x 14       64.29/46.43   69.64/57.14   67.86/42.86   26.79/33.93   53.57/25.00   82.14 (1000) / 85.71 (1)

    probe - sklearn: digits -7.78 / +0.00, weak -12.50 / -28.57; dcl-none - none: digits -5.00, weak -16.07 (means);
    selected epoch = the last of 6: digits 5 of 10 selected runs, weak 7 of 10; every run's health ok.
    Study wall time 58 s (digits), 87 s (weak).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu_model  # noqa: E402

METHODS = ("none", "linear", "pirl", "dcl", "dcl-none")


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str  # "digits" (real) or "cub" (synthetic CUB layout)
    seed: int  # the dataset's seed
    classes: int
    images_per_class: int | None  # None: every digit image
    image_size: int  # the backbone's input side
    rcm_grid: int  # the backbone's map side at image_size (one RCM region per map cell)
    ks: tuple[Any, ...]  # labels per class
    png_size: int = 64  # digits only

    def describe(self) -> str:
        if self.kind == "digits":
            n = "all 1,797" if self.images_per_class is None else f"{self.classes} x {self.images_per_class}"
            return (f"REAL images: scikit-learn's handwritten digits ({n}, {self.png_size}-px PNG), "
                    f"random-resnet50v2 at {self.image_size} px")
        return (f"synthetic CUB-layout sample, seed {self.seed}, {self.classes} classes x {self.images_per_class} "
                f"images, random-resnet50v2 at {self.image_size} px")


SAMPLES = {
    "digits": Sample("digits", "digits", 0, 10, None, 96, 3, (1, 5, "all")),
    "cub-s1": Sample("cub-s1", "cub", 1, 10, 16, 128, 4, (1, 5, "all")),
    "cub-s2": Sample("cub-s2", "cub", 2, 20, 14, 128, 4, (1, 5, "all")),
    "weak": Sample("weak", "cub", 3, 8, 14, 128, 4, (1, 5, "all")),
}
QUICK = {"digits": Sample("digits", "digits", 0, 10, 30, 64, 2, ("all",))}


def make_dataset(sample: Sample, data: Path) -> Path:
    """The sample's image folder (digits) or CUB-layout tree, written once."""
    if sample.kind == "digits":
        root = data / "digits"
        if not (root / "README").is_file():
            from pipeline.datasets.digits import write_digits

            write_digits(data, size=sample.png_size, seed=sample.seed, images_per_class=sample.images_per_class,
                         classes=sample.classes)
        return root
    root = data / "CUB_200_2011"
    if not (root / "README").is_file():
        from pipeline.sample import make_sample_dataset

        make_sample_dataset(data, sample.classes, sample.images_per_class, sample.seed)
    return root


DEMO_SPEC = ROOT / "studies" / "demo.toml"  # the protocol measured: its [grid] and its epoch ceiling


def demo_protocol() -> dict[str, Any]:
    """studies/demo.toml read once: its [grid] tables and its [heads] epochs (the ceiling)."""
    import tomllib

    return tomllib.loads(DEMO_SPEC.read_text())


def demo_grid_text(quick: bool) -> str:
    """The demo's [grid] as TOML lines (with --quick each list cut to its first value)."""
    def lists(table: dict[str, Any]) -> list[str]:
        return [f"{k} = [{', '.join(repr(x) if isinstance(x, str) else f'{x:g}' if isinstance(x, float) else str(x) for x in (v[:1] if quick else v))}]"
                for k, v in table.items() if isinstance(v, list)]

    grid = demo_protocol()["grid"]
    out = lists(grid)
    for method, table in grid.items():
        if isinstance(table, dict):
            out += ["", f"[grid.{method}]", *lists(table)]
    return "\n".join(out) + "\n"


def spec_text(sample: Sample, root: Path, work: Path, models: Path, seeds: list[int], epochs: int, quick: bool,
              heads_extra: list[str]) -> str:
    """studies/demo.toml's protocol for one sample (its grid trimmed to one value per axis with --quick)."""
    quoted = ", ".join(f'"{k}"' if isinstance(k, str) else str(k) for k in sample.ks)
    dataset = f'name = "folder"\nroot = "{root}"' if sample.kind == "digits" else f'root = "{root}"\ndownload = false'
    grid = demo_grid_text(quick)
    extra = "\n".join(heads_extra)
    return f"""# written by benchmarks/bench_adequacy.py: the demo's protocol on the sample {sample.name}
name = "adequacy-{sample.name}"
out = "{work / 'study'}"

[dataset]
{dataset}

[backbone]
handle = "random-resnet50v2"
seed = 0
model_cache = "{models}"
precision = "fp32"
image_size = {sample.image_size}
batch_size = 60

[views]
num_views = 2
jigsaw_grid = 3
rcm_grid = {sample.rcm_grid}
rcm_k = 1

[extraction]
features = "{work / 'features'}"

[heads]
methods = [{", ".join(f'"{m}"' for m in METHODS)}]
labels_per_class = [{quoted}]
seeds = [{", ".join(str(s) for s in seeds)}]
epochs = {epochs}
batch_size = 32
device = "cpu"
precision = "fp32"
val_per_class = 1
interval = "bootstrap"
{extra}

[grid]
{grid}"""


# ---- reading the study's files, defensively ----

def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def find_sweep(study: Path) -> Path | None:
    """The directory holding selection.json (study/sweep/ today; searched for when it moves)."""
    if (study / "sweep" / "selection.json").is_file():
        return study / "sweep"
    found = sorted(study.rglob("selection.json"))
    return found[0].parent if found else None


def test_top1(run: Path) -> float | None:
    """A run's test top-1 from predictions.csv (pred and label columns), else metrics.json's."""
    rows = read_csv(run / "predictions.csv")
    if rows and "pred" in rows[0] and "label" in rows[0]:
        return sum(r["pred"] == r["label"] for r in rows) / len(rows)
    metrics = read_json(run / "metrics.json") or {}
    value = (metrics.get("test") or {}).get("top1")
    return float(value) if value is not None else None


def epochs_trained(run: Path) -> int | None:
    rows = read_csv(run / "history.csv")
    return len(rows) if rows else None


def seed_of(run: str) -> int | None:
    m = re.search(r"seed=(\d+)", run)
    return int(m.group(1)) if m else None


def k_of(entry: dict[str, Any]) -> str:
    return str(entry.get("labels_per_class", entry.get("k", "all")))


def selected_runs(sweep: Path, runs_csv: list[dict[str, str]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """(method, K, seed) -> the selected run's directory, best epoch (runs.csv) and health."""
    selection = read_json(sweep / "selection.json") or {}
    entries = selection.get("selected", []) if isinstance(selection, dict) else []
    by_dir = {r.get("run_dir", ""): r for r in runs_csv}
    out = {}
    for entry in entries:
        if entry.get("cv_fold") not in (None, "", "final"):
            continue
        runs = entry.get("runs") or []
        seeds = entry.get("seeds") or [seed_of(r) for r in runs]
        for seed, run in zip(seeds, runs):
            if seed is None:
                continue
            row = by_dir.get(run, {})
            out[entry.get("aux", "?"), k_of(entry), int(seed)] = {
                "dir": sweep / run, "best_epoch": row.get("best_epoch") or "", "health": row.get("health") or ""}
    return out


# ---- the table ----

def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def signed(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.2f}"


def reference(work: Path, seed: int) -> Any:
    try:
        from tests.support.reference_probe import reference_probe

        return reference_probe(work / "features" / "train.h5", work / "features" / "test.h5", seed)
    except Exception as e:  # noqa: BLE001  (a benchmark prints what it can)
        return f"{type(e).__name__}: {e}"


def sample_table(sample: Sample, work: Path, seeds: list[int], epochs: int) -> list[str]:
    study = work / "study"
    sweep = find_sweep(study)
    lines = [f"## {sample.name}: {sample.describe()}", f"study: {study} (report.md); ceiling {epochs} epochs", ""]
    if sweep is None:
        return lines + ["no selection.json: the study did not finish (see its log)", ""]
    runs_csv = read_csv(sweep / "runs.csv")
    chosen = selected_runs(sweep, runs_csv)
    methods = [m for m in METHODS if any(key[0] == m for key in chosen)]
    ks = sorted({key[1] for key in chosen}, key=lambda k: (k == "all", int(k) if k.isdigit() else 0, k))
    refs = {s: reference(work, s) for s in seeds} if "all" in ks else {}
    header = ["K", "seed", *methods, "dcl-none - none", "probe", "sklearn (C)", "probe - sklearn"]
    lines += ["selected test top-1 (%)", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    diffs: dict[str, list[float]] = {}
    gaps: list[float] = []
    for k in ks:
        per_method: dict[str, list[float]] = {m: [] for m in methods}
        for seed in seeds:
            tops = {m: test_top1(chosen[m, k, seed]["dir"]) if (m, k, seed) in chosen else None for m in methods}
            for m, v in tops.items():
                if v is not None:
                    per_method[m].append(v)
            d = (tops["dcl-none"] - tops["none"]) if tops.get("dcl-none") is not None and tops.get("none") is not None else None
            if d is not None:
                diffs.setdefault(k, []).append(d)
            probe, sk, gap = tops.get("linear"), "-", "-"
            ref = refs.get(seed)
            if k == "all" and ref is not None:
                if isinstance(ref, str):
                    sk = ref
                else:
                    sk = f"{pct(ref.test_top1)} ({ref.c:g})"
                    if probe is not None:
                        gaps.append(probe - ref.test_top1)
                        gap = signed(probe - ref.test_top1)
            lines.append("| " + " | ".join([k, str(seed), *(pct(tops[m]) for m in methods), signed(d),
                                             pct(probe) if k == "all" else "-", sk, gap]) + " |")
        means = [pct(statistics.fmean(v)) if v else "-" for v in per_method.values()]
        mean_d = signed(statistics.fmean(diffs[k])) if diffs.get(k) else "-"
        lines.append("| " + " | ".join([k, "mean", *means, mean_d, "", "", ""]) + " |")
    lines.append("")
    for k, d in diffs.items():
        mean = statistics.fmean(d)
        lines.append(f"dcl-none - none at K = {k}: {', '.join(signed(x) for x in d)} points per seed, mean {signed(mean)} "
                     f"(target: within 5 points of none: {'met' if mean >= -0.05 - 1e-9 else 'MISSED'})")
    if gaps:
        lines.append(f"probe - sklearn at K = all: {', '.join(signed(x) for x in gaps)} points per seed (target: within "
                     f"1 point on every seed: {'met' if all(abs(x) <= 0.01 + 1e-9 for x in gaps) else 'MISSED'})")
    lines += ["", *epoch_lines(chosen, methods, ks, seeds, epochs), "", *health_lines(runs_csv, chosen), ""]
    return lines


def epoch_lines(chosen: dict, methods: list[str], ks: list[str], seeds: list[int], epochs: int) -> list[str]:
    """Per selected run: best epoch / epochs trained / ceiling; and how many selected runs ended at the ceiling."""
    header = ["K", "seed", *methods]
    lines = ["selected epoch / epochs trained / ceiling", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    at_last, total = 0, 0
    for k in ks:
        for seed in seeds:
            cells = []
            for m in methods:
                run = chosen.get((m, k, seed))
                if run is None:
                    cells.append("-")
                    continue
                trained = epochs_trained(run["dir"])
                best = run["best_epoch"]
                total += 1
                at_last += bool(best and trained and str(best) == str(trained))
                cells.append(f"{best or '-'}/{trained or '-'}/{epochs}")
            lines.append("| " + " | ".join([k, str(seed), *cells]) + " |")
    lines += ["", f"selected runs whose selected epoch is the last one trained: {at_last} of {total}"]
    return lines


def health_lines(runs_csv: list[dict[str, str]], chosen: dict) -> list[str]:
    if not runs_csv:
        return ["runs.csv: missing"]
    if "health" not in runs_csv[0]:
        return [f"runs.csv: {len(runs_csv)} runs, no health column"]
    counts: dict[str, int] = {}
    for r in runs_csv:
        counts[r["health"] or "(empty)"] = counts.get(r["health"] or "(empty)", 0) + 1
    selected = {}
    for run in chosen.values():
        selected[run["health"] or "(empty)"] = selected.get(run["health"] or "(empty)", 0) + 1
    other = sum(n for h, n in counts.items() if h not in ("ok", "under-trained"))
    return [f"health of all {len(runs_csv)} runs (runs.csv): " + ", ".join(f"{h} {n}" for h, n in sorted(counts.items())),
            f"  under-trained: {counts.get('under-trained', 0)}; other than ok or under-trained: {other}",
            "health of the selected runs: " + ", ".join(f"{h} {n}" for h, n in sorted(selected.items()))]


def run_sample(sample: Sample, out: Path, seeds: list[int], epochs: int, quick: bool, heads_extra: list[str]) -> list[str]:
    work = out / sample.name
    work.mkdir(parents=True, exist_ok=True)
    root = make_dataset(sample, work / "data")
    spec = work / "spec.toml"
    spec.write_text(spec_text(sample, root, work, out / "models", seeds, epochs, quick, heads_extra))
    log = work / "study.log"
    print(f"[{sample.name}] study {spec} (log: {log})", flush=True)
    start = time.time()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with open(log, "a") as f:
        proc = subprocess.run([sys.executable, "-m", "study", str(spec)], stdout=f, stderr=subprocess.STDOUT, env=env)
    took = time.time() - start
    tail = log.read_text().strip().splitlines()[-1:] if proc.returncode else []
    print(f"[{sample.name}] study exit {proc.returncode} after {took:.0f} s {' '.join(tail)}", flush=True)
    return sample_table(sample, work, seeds, epochs) + [f"(study wall time this call: {took:.0f} s)", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", default="digits,cub-s1,cub-s2,weak", help="comma-separated: " + ", ".join(SAMPLES))
    parser.add_argument("--seeds", default="0,1", help="comma-separated head seeds (2 or more for a paired spread)")
    parser.add_argument("--out", default="runs/bench-adequacy", help="work directory (kept: a rerun resumes)")
    parser.add_argument("--epochs", type=int, default=None, help="the epoch ceiling (default: studies/demo.toml's; --quick 6)")
    parser.add_argument("--quick", action="store_true", help="K = all, 6 epochs, one grid value, small digits")
    parser.add_argument("--heads-extra", action="append", default=[],
                        help="a TOML line added to every spec's [heads] (e.g. 'patience = 3'); repeatable")
    args = parser.parse_args()
    names = [s.strip() for s in args.samples.split(",") if s.strip()]
    unknown = [n for n in names if n not in SAMPLES]
    if unknown:
        parser.error(f"--samples: unknown {', '.join(unknown)}; expected some of {', '.join(SAMPLES)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    epochs = args.epochs or (6 if args.quick else int(demo_protocol()["heads"]["epochs"]))
    out = Path(args.out).resolve()
    print(f"CPU: {cpu_model()}; samples {', '.join(names)}; seeds {seeds}; ceiling {epochs} epochs"
          f"{'; --quick' if args.quick else ''}; out {out}", flush=True)
    tables = []
    for name in names:
        sample = QUICK.get(name, SAMPLES[name]) if args.quick else SAMPLES[name]
        if args.quick and name not in QUICK:
            sample = Sample(**{**sample.__dict__, "ks": ("all",)})
        tables += run_sample(sample, out, seeds, epochs, args.quick, args.heads_extra)
    print("\n" + "\n".join(tables))


if __name__ == "__main__":
    main()
