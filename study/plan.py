"""The plan of a study: its stages, what each extracts or trains, disk, memory and time, before any work.

    dataset   the split sizes (read from the dataset's files through pipeline.datasets, or CUB's published
              counts before a download)
    extract   per split: images x backbone inputs per image; whether an existing cache is reused
    sweep     runs per method and K (settings x seeds), each run's estimated seconds (study.costs)
    report    intervals and figures

Disk is counted per filesystem (caches, spatial maps, run directories at their peak, before unselected
runs' weights are pruned) against its free space; `study` refuses to start when it is short.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.diff import diff_keys
from pipeline.errors import PipelineError
from pipeline.schema import inputs_per_image

from .costs import (Calibration, Rows, bank_seconds, extraction_seconds, input_equivalents, method_key, run_seconds,
                    score_seconds)
from .spec import StudySpec

CUB_ROWS = {"train": 5994, "test": 5794}  # published split sizes (before the archive is downloaded)
CUB_CLASSES = 200
DEFAULT_DIM = 2048  # ResNet-50's pooled feature, until a probe or a cache says otherwise
STRIDE = 32  # ResNet-50's last map is ceil(S / 32) pixels on a side
PIPELINE_FACTOR = {True: 0.93, False: 0.96}  # whole extraction / model alone, measured (README "Speed")
RUN_FILES_BYTES = 150_000  # config, history, metrics, confusion.json, curves.png of one run
SCORED_FILES_BYTES = 700_000  # a selected run adds predictions.csv, confusion.png and predictions.png
RUNTIME_BYTES = 600 * 2**20  # the Python process with torch loaded
CACHE_KEYS = ("backbone", "image_size", "split", "seed", "views", "spatial", "precision")
SWEEP = "sweep"  # the study's sweep directory under its out


@dataclass
class Split:
    name: str
    images: int
    image_id: np.ndarray | None = None
    label: np.ndarray | None = None


@dataclass
class CacheState:
    """An existing cache against what the spec asks for."""

    path: Path
    status: str  # "missing", "incomplete" (resumable), "complete" (reused) or "mismatch"
    differences: list[str] = field(default_factory=list)
    config_hash: str | None = None
    rows_done: int = 0


@dataclass
class RunPlan:
    """One (setting, seed) of the sweep, as the cost model sees it: heads.grid's planned run and its estimate."""

    aux: str
    k: str
    seed: int
    label: str
    options: dict[str, Any]  # the setting's options (heads.grid.Setting.options)
    planned: Any = None  # heads.grid.PlannedRun: its run directory and the options run_experiment gets
    seconds: float = 0.0
    stoppable: bool = False  # search = "halving" may stop it before the full budget (heads.search.stoppable)
    epochs: float | None = None  # halving: the expected epochs trained per run of its group (survivors continue)


@dataclass
class Plan:
    spec: StudySpec
    precision: str  # the extraction precision that will be used (auto resolved)
    heads_precision: str
    device: str
    classes: int
    splits: dict[str, Split]
    caches: dict[str, CacheState]
    per_image: int
    dim: int
    spatial_hw: tuple[int, int] | None
    runs: list[RunPlan]
    notes: list[str]
    calibration: Calibration | None = None

    @property
    def patch_inputs(self) -> int:
        """Patch crops per image (V x grid^2 with the patches view, else 0)."""
        return self.spec.num_views * self.spec.patch_grid ** 2 if "patches" in self.spec.kinds else 0

    @property
    def input_cost(self) -> float:
        """Backbone inputs per image in full-size equivalents (study.costs.input_equivalents)."""
        patch_px = self.spec.patch_geometry()[1] if self.patch_inputs else 0
        return input_equivalents(self.per_image - self.patch_inputs, self.patch_inputs, patch_px, self.spec.image_size)

    @property
    def train_rows(self) -> Rows:
        return study_rows(self.spec, self.splits["train"].images, self.classes, "all")


# --- environment -------------------------------------------------------------------------------------
def resolve_extraction_precision(asked: str) -> str:
    """auto -> what extract-features picks here (fp16 on a GPU, bf16 on a CPU with native bfloat16, else fp32),
    found without TensorFlow: a CUDA device torch sees, and the CPU's flags."""
    if asked != "auto":
        return asked
    import torch

    from extract.precision import cpu_has_native_bf16  # reads /proc/cpuinfo; imports no TensorFlow

    if torch.cuda.is_available():
        return "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def resolve_heads(spec: StudySpec) -> tuple[str, str]:
    """(device, precision) the sweep will use (heads' own rules)."""
    from heads.experiment import device_of
    from heads.train import resolve_precision

    device = device_of(spec.device)
    return str(device), resolve_precision(spec.heads_precision, device)


# --- dataset and caches ----------------------------------------------------------------------------------
def read_splits(spec: StudySpec) -> tuple[dict[str, Split], int, list[str]]:
    """Split sizes from the dataset's files ([dataset] name through pipeline.datasets.load_dataset); CUB's
    published counts when it is still to be downloaded."""
    from pipeline.datasets import load_dataset

    if not _dataset_present(spec):
        if spec.download and spec.dataset == "cub":
            return ({s: Split(s, n) for s, n in CUB_ROWS.items()}, CUB_CLASSES,
                    [f"{spec.data_root}: not there yet; [dataset] download = true fetches CUB-200-2011 (1.15 GB)"])
        if spec.download:
            return ({s: Split(s, 0) for s in ("train", "test")}, 1,
                    [f"{spec.data_root}: not there yet; [dataset] download = true fetches {spec.dataset} (sizes, "
                     "disk and time are known once it is there)"])
        if spec.dataset == "cub":
            raise PipelineError(f"{spec.path}: [dataset] root {spec.data_root}: no images.txt there; set download = "
                                "true, unpack CUB_200_2011.tgz there, or run make-sample-dataset")
    splits, classes = {}, 0
    for name in ("train", "test"):
        try:
            data = load_dataset(spec.dataset, spec.data_root, name, check_images=False, **spec.dataset_options)
        except PipelineError as e:
            raise PipelineError(f"{spec.path}: [dataset] {spec.dataset} at {spec.data_root}: {e}") from None
        splits[name] = Split(name, len(data), data.image_id, data.label)
        classes = len(data.class_names)
    return splits, classes, []


def _dataset_present(spec: StudySpec) -> bool:
    """CUB: images.txt at the root; another dataset: its root exists (its reader says what is missing)."""
    return (spec.data_root / "images.txt").is_file() if spec.dataset == "cub" else spec.data_root.is_dir()


def expected_config(spec: StudySpec, split: str, precision: str) -> dict[str, Any]:
    """The cache config keys the spec determines (extract-features adds its preprocessing and a dataset fingerprint)."""
    return {"backbone": spec.backbone, "image_size": spec.image_size, "split": split, "seed": spec.backbone_seed,
            "views": spec.views_config(), "spatial": spec.spatial, "precision": precision}


def inspect_cache(path: Path, expected: dict[str, Any], split: Split) -> CacheState:
    """Missing, incomplete (extract-features resumes it), complete and matching (reused), or a mismatch."""
    if not path.exists():
        return CacheState(path, "missing")
    try:
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["config"])
            complete = bool(f.attrs.get("complete"))
            config_hash = str(f.attrs.get("config_hash"))
            done = int(f["done"][...].sum()) if "done" in f else 0
            rows = (f["image_id"][...], f["label"][...]) if "image_id" in f else (None, None)
    except (OSError, KeyError, ValueError) as e:
        raise PipelineError(f"{path}: exists but is not a readable feature cache ({str(e).splitlines()[0]}); "
                            "move it away or choose another [extraction] features directory") from None
    found = {k: config.get(k) for k in expected}
    differences = diff_keys(found, expected, labels=("in the cache", "in the spec"))
    if split.image_id is not None and rows[0] is not None and not (
            np.array_equal(rows[0], split.image_id) and np.array_equal(rows[1], split.label)):
        differences.append(f"rows (its image ids and labels are not the {split.name} split of the dataset root)")
    if differences:
        return CacheState(path, "mismatch", differences, config_hash)
    return CacheState(path, "complete" if complete else "incomplete", [], config_hash, done)


# --- runs -------------------------------------------------------------------------------------------------
def study_rows(spec: StudySpec, n_train_split: int, classes: int, k: str) -> Rows:
    """Training, labelled and validation rows of one run (heads.data's split rules, from counts)."""
    per_class = n_train_split / max(classes, 1)
    if spec.val_per_class:
        val_per_class = min(spec.val_per_class, max(per_class - 1, 0))
    else:
        val_per_class = min(max(round(spec.val_fraction * per_class), 1), max(per_class - 1, 0))
    val = int(round(val_per_class * classes))
    train = n_train_split - val
    labelled = train if k == "all" else min(train, int(k) * classes)
    return Rows(train, labelled, val, spec.batch_size)


def sweep_options(spec: StudySpec) -> dict[str, Any]:
    """The options of the study's sweep in sweep-heads' names (heads.sweep.run_sweep reads them)."""
    return {"val_fraction": spec.val_fraction, "val_per_class": spec.val_per_class, "standardize": True,
            "selection": spec.selection, "cv_folds": spec.cv_folds, "keep_weights": spec.keep_weights,
            "device": spec.device, **spec.sweep_options()}


def sweep_plan(spec: StudySpec, cv: bool = True) -> Any:
    """The study's sweep as heads.grid plans it (heads.sweep's engine trains it): runs named by every option off
    heads' defaults (heads.grid.off_default_names), so a grown study finds its finished runs under the same names;
    under selection = "cv" (and `cv`) each (setting, seed) as its fold runs."""
    from heads.grid import off_default_names, plan_grid

    from .spec import FIXED_IN_HEADS

    shared = {"command": "study", "val_fraction": spec.val_fraction, "val_per_class": spec.val_per_class,
              "standardize": True}
    return plan_grid(spec.name, spec.out / SWEEP, spec.methods, spec.seeds, spec.grid, shared,
                     off_default_names(FIXED_IN_HEADS), spec.cv_folds if cv and spec.selection == "cv" else False)


def plan_runs(spec: StudySpec) -> tuple[list[RunPlan], list[str]]:
    """Every (setting, seed) in sweep order (seed-major, as sweep-heads runs them), and grid notes."""
    grid = sweep_plan(spec, cv=False)
    runs = [RunPlan(r.setting.aux, str(r.setting.options["labels_per_class"]), r.seed, r.label, r.setting.options, r)
            for r in grid.runs]
    if spec.search == "halving":
        _halving_marks(spec, grid.settings, runs)
    return runs, grid.notes


def _halving_marks(spec: StudySpec, settings: list[Any], runs: list[RunPlan]) -> None:
    """Which runs successive halving may stop, and each run's expected epochs (its group's mean; a survivor
    continues from its rung, heads.rungs)."""
    from heads.search import CONDITIONS, halving_budget, stoppable

    may = stoppable(settings)
    key = lambda s: (s.aux, tuple(str(s.options.get(c)) for c in CONDITIONS))  # noqa: E731  (heads.search's groups)
    sizes: dict[tuple, int] = {}
    for s in settings:
        sizes[key(s)] = sizes.get(key(s), 0) + 1
    for i, run in enumerate(runs):
        s = settings[i % len(settings)]
        run.stoppable = may[i % len(settings)]
        run.epochs = halving_budget(sizes[key(s)], 1, spec.epochs, spec.halving_eta,
                                    spec.halving_rungs).expected_epochs_per_run


def first_settings(spec: StudySpec) -> list[tuple[str, dict[str, Any]]]:
    """(method, options) of the first grid setting of each cost the calibration measures (study.costs.method_key)."""
    from heads.grid import expand

    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for s in expand(spec.grid)[0]:
        out.setdefault(method_key(s.aux, False, s.options), (s.aux, s.options))
    return list(out.values())


# --- the plan ---------------------------------------------------------------------------------------------
def make_plan(spec: StudySpec) -> Plan:
    """Everything `--plan` prints except the timings (those need `calibrate`)."""
    precision = resolve_extraction_precision(spec.precision)
    device, heads_precision = resolve_heads(spec)
    splits, classes, notes = read_splits(spec)
    caches = {s: inspect_cache(p, expected_config(spec, s, precision), splits[s])
              for s, p in (("train", spec.train_cache), ("test", spec.test_cache))}
    dim, hw = DEFAULT_DIM, (math.ceil(spec.image_size / STRIDE),) * 2
    for state in caches.values():  # a cache already there knows its real shapes
        if state.status in ("complete", "incomplete"):
            dim, hw = _cache_shapes(state.path, dim, hw)
    runs, grid_notes = plan_runs(spec)
    return Plan(spec, precision, heads_precision, device, classes, splits, caches,
                inputs_per_image(spec.kinds, spec.num_views, spec.patch_grid), dim, hw if spec.spatial else None, runs,
                notes + grid_notes)


def _cache_shapes(path: Path, dim: int, hw: tuple[int, int]) -> tuple[int, tuple[int, int]]:
    with h5py.File(path, "r") as f:
        dim = int(f.attrs.get("feature_dim", dim))
        if "spatial/original" in f:
            hw = tuple(f["spatial/original"].shape[1:3])
    return dim, hw


def calibrate(plan: Plan, backbone: bool, saved: Path | None = None, quick: bool = False) -> Calibration:
    """Heads costs at the study's shapes (a few seconds); the backbone's speed when extraction is to come.

    `saved` (the study's calibration.json) is reused when it was measured for the same shapes (a quick one,
    which `study` itself saves so that a resumed study does not calibrate again, only by another quick call).
    """
    from .calibrate import calibrate_heads, probe_backbone

    spec = plan.spec
    key = calibration_key(plan)
    if saved is not None and saved.is_file():
        data = json.loads(saved.read_text())
        if (data.get("key") == key and (quick or not data.get("quick"))
                and (data["calibration"].get("backbone_inputs_per_s") or not backbone)):
            plan.calibration = Calibration.from_json(data["calibration"])
            return plan.calibration
    calibration = Calibration()
    shapes = {"n_train": plan.train_rows.train, "n_test": plan.splits["test"].images, "dim": plan.dim,
              "classes": plan.classes, "views": spec.num_views, "spatial_hw": plan.spatial_hw, "kinds": spec.kinds,
              "rcm_grid": spec.rcm_grid, "patch_grid": spec.patch_grid, "epochs": spec.epochs, "seeds": len(spec.seeds)}
    calibrate_heads(first_settings(spec), shapes, spec.batch_size, plan.heads_precision, spec.spatial, calibration,
                    quick=quick)
    if backbone and any(c.status != "complete" for c in plan.caches.values()):
        probe_backbone(probe_argv(spec, plan.precision), calibration)
    plan.calibration = calibration
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        from heads.artifacts import write_json

        write_json(saved, {"key": key, "calibration": calibration.to_json(), **({"quick": True} if quick else {})})
    return calibration


def calibration_key(plan: Plan) -> dict[str, Any]:
    spec = plan.spec
    return {"methods": spec.methods, "grid": {a: {k: [str(x) for x in v] for k, v in o.items()} for a, o in spec.grid.items()},
            "rows": [plan.splits["train"].images, plan.splits["test"].images], "classes": plan.classes, "dim": plan.dim,
            "spatial": list(plan.spatial_hw) if plan.spatial_hw else None, "views": spec.views_config(),
            "batch": spec.batch_size, "precision": [plan.precision, plan.heads_precision], "device": plan.device,
            "backbone": spec.backbone, "image_size": spec.image_size, "cpu": _cpu_name()}


def _cpu_name() -> str:
    from extract.precision import cpu_model_name

    return cpu_model_name()


def probe_argv(spec: StudySpec, precision: str) -> list[str]:
    return ["--backbone", spec.backbone, "--image-size", str(spec.image_size), "--precision", precision,
            "--seed", str(spec.backbone_seed), "--model-cache", str(spec.model_cache),
            "--batch", str(max(1, spec.extract_batch_size // 2))] + (["--spatial"] if spec.spatial else [])


# --- estimates --------------------------------------------------------------------------------------------
def run_estimate(plan: Plan, run: RunPlan) -> float:
    spatial = plan.spatial_hw is not None and run.aux in ("dcl", "dcl-none")
    rows = study_rows(plan.spec, plan.splits["train"].images, plan.classes, run.k)
    return run_seconds(run.aux, rows, run.epochs or plan.spec.epochs, spatial, plan.calibration, run.options)


def stage_seconds(plan: Plan) -> dict[str, float | None]:
    """Estimated seconds of each stage still to run (finished caches count 0)."""
    cal = plan.calibration
    spec = plan.spec
    out: dict[str, float | None] = {"dataset": 0.0}
    for split in ("train", "test"):
        state = plan.caches[split]
        left = plan.splits[split].images - (state.rows_done if state.status == "incomplete" else 0)
        out[f"extract {split}"] = 0.0 if state.status == "complete" else extraction_seconds(
            left, plan.input_cost, cal, PIPELINE_FACTOR[spec.spatial]) if cal else None
    if cal is None:
        return {**out, "sweep": None, "report": None}
    for run in plan.runs:
        run.seconds = run_estimate(plan, run)
    if spec.selection == "cv":
        add_cv_costs(plan)
    else:
        share_banks(plan.runs)
    selected = {(r.aux, r.k, r.seed) for r in plan.runs}
    scoring = sum(score_seconds(a, plan.splits["test"].images, plan.spatial_hw is not None and a.startswith("dcl"), cal)
                  for a, _k, _s in selected)
    out["sweep"] = ((cache_bytes_in_memory(plan) + scratch_bytes(plan)) / cal.read_bytes_per_s
                    + sum(r.seconds for r in plan.runs) + scoring)
    out["report"] = 2.0 + report_intervals(spec) * cal.bootstrap_s_per_interval
    return out


def cv_folds_of(plan: Plan, k: str) -> int:
    """F for K under selection = "cv" (heads.cv.folds_for); 1 under validation selection."""
    from heads.cv import folds_for

    return folds_for(k, plan.spec.cv_folds) if plan.spec.selection == "cv" else 1


def cv_run_counts(plan: Plan) -> tuple[int, int]:
    """(fold runs, final runs) of a cross-validated study: F per (setting, seed), one final per (method, K, seed)."""
    folds = sum(cv_folds_of(plan, r.k) for r in plan.runs)
    return folds, len({(r.aux, r.k, r.seed) for r in plan.runs})


def add_cv_costs(plan: Plan) -> None:
    """selection = "cv": each (setting, seed) trains F fold runs (each on (F-1)/F of the K rows, costed as a whole
    run: the unlabelled rows and the per-step work do not shrink), and each (method, K, seed) one final run, its
    cost shared by the settings that competed for it."""
    groups: dict[tuple, list[RunPlan]] = {}
    for run in plan.runs:
        groups.setdefault((run.aux, run.k, run.seed), []).append(run)
    for group in groups.values():
        final = sum(r.seconds for r in group) / len(group)
        for run in group:
            run.seconds = run.seconds * cv_folds_of(plan, run.k) + final / len(group)


def share_banks(runs: list[RunPlan]) -> None:
    """Runs that train as one bank (heads.bank: linear/none, same seed and options but lr / weight decay) share
    the bank's time (study.costs.bank_seconds) equally."""
    from heads.bank import BANK_AUXES, BANK_OPTIONS

    groups: dict[tuple, list[RunPlan]] = {}
    for run in runs:
        if run.aux in BANK_AUXES and run.options.get("precision") != "fp16":
            rest = tuple(sorted((k, repr(v)) for k, v in run.options.items() if k not in BANK_OPTIONS))
            groups.setdefault((run.aux, run.seed, rest), []).append(run)
    for group in (g for g in groups.values() if len(g) > 1):
        each = bank_seconds([r.seconds for r in group]) / len(group)
        for run in group:
            run.seconds = each


def report_intervals(spec: StudySpec) -> int:
    """The bootstraps the report computes at each K: a band per method (the figure), each method against its own
    baseline (table and figure share it) and each other method against the linear probe (study.report)."""
    from heads.options import BASELINE_OF

    own = sum(BASELINE_OF.get(m) in spec.methods for m in spec.methods)
    linear = len(spec.methods) - 1 if "linear" in spec.methods else 0
    return len(spec.labels_per_class) * (len(spec.methods) + own + linear)


def cache_bytes(plan: Plan, split: str) -> tuple[int, int]:
    """(features bytes, spatial-map bytes before compression) of one split's cache."""
    n = plan.splits[split].images
    feats = n * (plan.per_image - plan.patch_inputs) * plan.dim * 4 + n * plan.patch_inputs * plan.dim * 2  # patches: fp16
    maps = 0
    if plan.spatial_hw is not None:
        h, w = plan.spatial_hw
        maps = n * (1 + (plan.spec.num_views if "rcm" in plan.spec.kinds else 0)) * h * w * plan.dim * 2
    return feats, maps


def map_bytes_read(plan: Plan) -> int:
    """Spatial-map bytes the sweep reads (float16): the training cache's, and the test split's originals."""
    if not any(m in ("dcl", "dcl-none") for m in plan.spec.methods):
        return 0
    _feats, maps = cache_bytes(plan, "train")
    _test_feats, test_maps = cache_bytes(plan, "test")
    return maps + (test_maps // (1 + plan.spec.num_views) if "rcm" in plan.spec.kinds else test_maps)


def maps_out_of_core(plan: Plan) -> bool:
    """heads' --maps-in-memory auto on a CPU: maps beyond heads.data.MAPS_MEMORY_BUDGET are read out of core."""
    from heads.data import MAPS_MEMORY_BUDGET

    return map_bytes_read(plan) > MAPS_MEMORY_BUDGET


def view_bytes_read(plan: Plan) -> int:
    """The training cache's shuffled views' pooled features (all but the original's)."""
    feats, _maps = cache_bytes(plan, "train")
    return feats - plan.splits["train"].images * plan.dim * 4


def views_out_of_core(plan: Plan) -> bool:
    """heads' --maps-in-memory auto on a CPU: views beyond heads.data.VIEWS_MEMORY_BUDGET are read out of core."""
    from heads.data import VIEWS_MEMORY_BUDGET

    return view_bytes_read(plan) > VIEWS_MEMORY_BUDGET


def scratch_bytes(plan: Plan) -> int:
    """The uncompressed scratch copies heads reads out of core (maps and views beyond their budgets)."""
    return map_bytes_read(plan) * maps_out_of_core(plan) + view_bytes_read(plan) * views_out_of_core(plan)


def cache_bytes_in_memory(plan: Plan) -> int:
    """What the sweep holds in memory: the training cache's features, the test features, and the spatial maps
    and views unless they are read out of core (then the page cache holds them, not the process)."""
    feats, _maps = cache_bytes(plan, "train")
    test_feats = plan.splits["test"].images * plan.dim * 4  # scoring reads the original features only
    return feats + test_feats + map_bytes_read(plan) - scratch_bytes(plan)


def _on_filesystem(needs: dict[Path, dict[str, int]], path: Path) -> dict[str, int]:
    """The entry of `needs` for the filesystem holding `path` (keyed by its first existing directory seen)."""
    where = existing_parent(path)
    for known in needs:
        if os.stat(known).st_dev == os.stat(where).st_dev:
            return needs[known]
    return needs.setdefault(where, {})


def disk_needs(plan: Plan) -> dict[Path, dict[str, int]]:
    """Bytes still to be written, per filesystem (named by an existing directory on it), by kind."""
    needs: dict[Path, dict[str, int]] = {}
    for split, state in plan.caches.items():
        if state.status == "complete":
            continue
        feats, maps = cache_bytes(plan, split)
        done = state.rows_done / max(plan.splits[split].images, 1) if state.status == "incomplete" else 0.0
        where = _on_filesystem(needs, state.path)
        where["caches"] = where.get("caches", 0) + int(feats * (1 - done))
        where["spatial maps"] = where.get("spatial maps", 0) + int(maps * (1 - done))
    left = [r for r in plan.runs if not (r.planned.run_dir / "metrics.json").is_file()]
    def model_bytes(run: RunPlan) -> int:
        spatial = plan.spatial_hw is not None and run.aux.startswith("dcl")
        return plan.calibration.methods[method_key(run.aux, spatial, run.options)].model_bytes if plan.calibration \
            else 25 * 2**20
    scored = len({(r.aux, r.k, r.seed) for r in left})
    if scratch_bytes(plan):  # heads copies maps and views, uncompressed, to scratch files while a sweep runs
        scratch = _on_filesystem(needs, Path(tempfile.gettempdir()))
        scratch["out-of-core scratch copy"] = scratch.get("out-of-core scratch copy", 0) + scratch_bytes(plan)
    where = _on_filesystem(needs, plan.spec.out)
    where["run directories"] = where.get("run directories", 0) + sum(model_bytes(r) + RUN_FILES_BYTES for r in left) + scored * SCORED_FILES_BYTES
    # heads.rungs: each rung run's weights, momentum and (when another epoch's) best weights, at most 3 model.pt
    rung = sum(3 * model_bytes(r) for r in left if r.stoppable)
    if rung:  # at their peak after the first rung, before the stopped runs' are deleted
        where["halving's rung states"] = where.get("halving's rung states", 0) + rung
    return needs


def existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_shortfalls(plan: Plan) -> list[str]:
    """One line per filesystem whose free space is below what the study still has to write."""
    short = []
    for where, kinds in disk_needs(plan).items():
        need, free = sum(kinds.values()), shutil.disk_usage(where).free
        if need > free:
            short.append(f"{where}: the study needs {fmt_bytes(need)} more ({describe_kinds(kinds)}) and only "
                         f"{fmt_bytes(free)} is free ({need - free:,} bytes short)")
    return short


def peak_memory(plan: Plan) -> int:
    """The sweep's peak: the caches it holds in memory, the runtime, one DCL batch of maps in float32."""
    batch_maps = 0
    if plan.spatial_hw is not None and any(m in ("dcl", "dcl-none") for m in plan.spec.methods):
        h, w = plan.spatial_hw
        batch_maps = 2 * plan.spec.batch_size * 2 * h * w * plan.dim * 4 * 3  # both streams, fwd + bwd copies
    return cache_bytes_in_memory(plan) + RUNTIME_BYTES + batch_maps


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def describe_kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k} {fmt_bytes(v)}" for k, v in kinds.items() if v)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "not estimated"
    s = float(s)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def describe(plan: Plan) -> str:
    """What `study --plan` prints: stages, inputs, runs per method and K, disk, memory, time per stage."""
    spec, cal = plan.spec, plan.calibration
    times = stage_seconds(plan)
    lines = [f"study {spec.name} ({spec.path}) -> {spec.out}"]
    if "random" in spec.backbone:
        lines.append(f"NOTE: backbone {spec.backbone} has random, UNTRAINED weights: the numbers will say nothing "
                     "about a pretrained model")
    lines += [f"machine: {_cpu_name()} ({os.cpu_count()} cores); extraction precision {plan.precision}"
              f"{'' if spec.precision == plan.precision else f' (asked {spec.precision})'}; heads on {plan.device} "
              f"in {plan.heads_precision}", "", "stages:"]
    train, test = plan.splits["train"], plan.splits["test"]
    lines.append(f"  1 dataset   {spec.data_root}: {plan.classes} classes, {train.images} train / {test.images} test "
                 f"images{' (to download)' if spec.download and train.image_id is None else ''}")
    views = " + ".join(view_text(spec, k) for k in spec.kinds)
    maps = f", spatial maps {plan.spatial_hw[0]}x{plan.spatial_hw[1]}" if plan.spatial_hw else ""
    for i, split in enumerate(("train", "test")):
        state = plan.caches[split]
        n = plan.splits[split].images
        what = {"complete": "complete, config matches: reused", "missing": "to extract",
                "incomplete": f"incomplete ({state.rows_done}/{n} rows): resumes",
                "mismatch": "HOLDS ANOTHER CONFIGURATION: " + "; ".join(state.differences)}[state.status]
        lines.append(f"  {2 if i == 0 else ' '} extract   {split}: {n} images x {plan.per_image} inputs = "
                     f"{n * plan.per_image:,} backbone inputs ({views}{maps}) at {spec.image_size} px -> {state.path}: "
                     f"{what}; ETA {fmt_seconds(times[f'extract {split}'])}")
    lines.append(f"  3 sweep     {len(plan.runs)} runs ({len(spec.methods)} methods x K {', '.join(spec.labels_per_class)} "
                 f"x seeds {', '.join(map(str, spec.seeds))}), {spec.epochs} epochs each; ETA {fmt_seconds(times['sweep'])}")
    lines += search_lines(plan)
    if spec.selection == "cv":
        folds, finals = cv_run_counts(plan)
        lines.append(f"            selection: cross-validation within the K labelled rows of each class (heads.cv; "
                     f"{spec.cv_folds or 'min(K, 5)'} folds): {folds} fold runs, then {finals} final runs on all K rows; "
                     "the validation rows are not used")
    lines.append(f"  4 report    report.md + report.html, {spec.interval} intervals; ETA {fmt_seconds(times['report'])}")
    lines += ["", *runs_table(plan), ""]
    lines += disk_lines(plan)
    parts = [f"spatial maps {fmt_bytes(map_bytes_read(plan))}"] * maps_out_of_core(plan) + \
        [f"views {fmt_bytes(view_bytes_read(plan))}"] * views_out_of_core(plan)
    out_of_core = (f"; {' and '.join(parts)} read out of core through a scratch copy in {tempfile.gettempdir()} "
                   "(--maps-in-memory auto)") if parts else ""
    lines.append(f"memory: the sweep's peak about {fmt_bytes(peak_memory(plan))} (caches in memory "
                 f"{fmt_bytes(cache_bytes_in_memory(plan))}{out_of_core}); {fmt_bytes(_available_memory())} available")
    if cal is not None:
        lines.append(calibration_line(cal))
    total = [t for t in times.values()]
    lines.append(f"total ETA: {fmt_seconds(sum(t for t in total if t)) if all(t is not None for t in total) else 'not estimated (run --plan for a calibration)'}")
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)


def search_lines(plan: Plan) -> list[str]:
    """The sweep's engines when not the default: successive halving's stoppable runs and budget, the launcher."""
    spec, lines = plan.spec, []
    if spec.launcher:
        lines.append(f"            runs trained {'in process' if spec.launcher == 'in-process' else f'by {spec.workers} {spec.launcher} workers'} "
                     "(heads.workers)")
    if spec.search == "halving":
        stop = [r for r in plan.runs if r.stoppable]
        expected = sum(r.epochs or spec.epochs for r in plan.runs)
        listed = len(stop) <= LISTED_STOPPABLE
        lines.append(f"            search: successive halving (eta {spec.halving_eta}, {spec.halving_rungs} rungs; "
                     f"heads.search): {len(stop)} of {len(plan.runs)} runs may be stopped early "
                     f"({'marked * below' if listed else 'per method: the table below'}); about {expected:.0f} epochs "
                     f"in all instead of {len(plan.runs) * spec.epochs} (the ETA counts them; survivors continue "
                     "from their rung)")
        lines += [f"            * {r.label} seed={r.seed}" for r in stop] if listed else []
    return lines


LISTED_STOPPABLE = 12  # --plan names each run halving may stop up to this many; beyond, counts per method


def runs_table(plan: Plan) -> list[str]:
    spec = plan.spec
    ks = spec.labels_per_class
    halving = spec.search == "halving"
    head = ["runs per method and K (settings x seeds):", "  " + f"{'method':10s}" + "".join(f"{'K=' + k if k != 'all' else 'all':>8s}" for k in ks)
            + f"{'total':>8s}" + (f"{'may stop':>10s}" if halving else "") + f"{'est. time':>16s}"]
    for aux in spec.methods:
        counts = [sum(r.aux == aux and r.k == k for r in plan.runs) for k in ks]
        stop = f"{sum(r.stoppable for r in plan.runs if r.aux == aux):10d}" if halving else ""
        secs = sum(r.seconds for r in plan.runs if r.aux == aux) if plan.calibration else None
        head.append("  " + f"{aux:10s}" + "".join(f"{c:8d}" for c in counts) + f"{sum(counts):8d}{stop}{fmt_seconds(secs):>16s}")
    return head


def disk_lines(plan: Plan) -> list[str]:
    lines = []
    for where, kinds in disk_needs(plan).items():
        need, free = sum(kinds.values()), shutil.disk_usage(where).free
        verdict = "ok" if need <= free else f"SHORT by {fmt_bytes(need - free)}"
        lines.append(f"disk on {where}: needs {fmt_bytes(need)} ({describe_kinds(kinds) or 'nothing new'}; run "
                     f"directories at their peak, before unselected weights are pruned), {fmt_bytes(free)} free: {verdict}")
    return lines


def view_text(spec: StudySpec, kind: str) -> str:
    """"original", "jigsaw x 4", or "patches x 4 (9 crops of 64 px, ~0.73 of a 224-px input per view)"."""
    if kind == "original":
        return kind
    if kind != "patches":
        return f"{kind} x {spec.num_views}"
    patch = spec.patch_geometry()[1]
    cost = input_equivalents(0, spec.patch_grid ** 2, patch, spec.image_size)
    return (f"patches x {spec.num_views} ({spec.patch_grid ** 2} crops of {patch} px, ~{cost:.2f} of a "
            f"{spec.image_size}-px input per view)")


def calibration_line(cal: Calibration) -> str:
    parts = [f"calibration ({cal.seconds:.1f} s):"]
    if cal.backbone_inputs_per_s:
        stand_in = cal.backbone.get("stand_in")
        timed_on = (f" timed on {stand_in} (the same ResNet-50 v2 architecture and FLOPs, random weights): the "
                    "spec's TF-Hub model is not cached here and cannot be fetched offline;") if stand_in else ""
        parts.append(f"backbone {cal.backbone_inputs_per_s:.1f} inputs/s ({cal.backbone.get('precision')}, "
                     f"start-up {cal.backbone_startup_s:.1f} s);{timed_on}")
    parts.append("heads per step " + ", ".join(f"{k} {1000 * c.step_s:.1f} ms + {1e6 * c.row_s:.1f} us/row"
                                              for k, c in cal.methods.items()))
    return " ".join(parts)


def _available_memory() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return float("nan")
