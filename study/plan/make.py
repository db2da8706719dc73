"""The plan of a study: its stages, what each extracts or trains, before any work (its disk, memory and time:
study.plan.estimates; the text `--plan` prints: study.plan.text).

    dataset   the split sizes (read from the dataset's files through pipeline.datasets, or CUB's published
              counts before a download)
    extract   per split: images x backbone inputs per image; whether an existing cache is reused
    sweep     runs per method and K (settings x seeds), each run's estimated seconds (study.plan.costs)
    report    intervals and figures

Disk is counted per filesystem (caches, spatial maps, run directories at their peak, before unselected
runs' weights are pruned) against its free space; `study` refuses to start when it is short.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.diff import diff_keys
from pipeline.errors import PipelineError
from pipeline.precision import check_resolved, cpu_has_native_bf16, cpu_model_name
from pipeline.schema import inputs_per_image

from study.plan.costs import Calibration, Rows, can_use_maps, input_equivalents, method_key
from heads.cells import K
from study.spec import StudySpec

CUB_ROWS = {"train": 5994, "test": 5794}  # published split sizes (before the archive is downloaded)


CUB_CLASSES = 200


DEFAULT_DIM = 2048  # ResNet-50's pooled feature, until a probe or a cache says otherwise


STRIDE = 32  # ResNet-50's last map is ceil(S / 32) pixels on a side


CACHE_KEYS = ("backbone", "image_size", "split", "seed", "views", "spatial", "precision")


SWEEP = "sweep"  # the study's sweep directory under its out


@dataclass
class Split:
    name: str
    images: int
    image_id: np.ndarray | None = None
    label: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)  # the dataset's (the calibration draws its figures with them)


@dataclass
class CacheState:
    """An existing cache against what the spec asks for."""

    path: Path
    status: str  # "missing", "incomplete" (resumable), "complete" (reused) or "mismatch"
    differences: list[str] = field(default_factory=list)
    config_hash: str | None = None
    rows_done: int = 0

    def refuse_mismatch(self, split: str) -> None:
        """One line when a cache of another configuration is where this split's must go."""
        if self.status == "mismatch":
            raise PipelineError(f"{self.path}: a {split} cache of another configuration is there "
                                f"({'; '.join(self.differences)}); move it away, or set [extraction] features to "
                                "another directory")


@dataclass
class RunPlan:
    """One (setting, seed) of the sweep, as the cost model sees it: heads.search.grid's planned run and its estimate."""

    aux: str
    k: K  # labels per class (None: all)
    seed: int
    label: str
    options: Any  # its typed options (heads.options.MethodOptions: the planned run's spec's)
    planned: Any = None  # heads.search.grid.PlannedRun: its run directory and its typed spec
    seconds: float = 0.0
    stoppable: bool = False  # search = "halving" may stop it before the full budget (heads.search.halving.stoppable)
    epochs: float | None = None  # halving: the expected epochs trained per run of its group (survivors continue)
    ends: float = 1.0  # halving: the expected rungs it trains in, each ending with its run directory written
    full: float = 1.0  # halving: the chance it trains in the full budget's rung (its cell's survivors / settings)
    full_from: int = 0  # halving: the epochs a run has trained when it enters the full budget's rung
    rungs: tuple[int, ...] = ()  # halving: the epochs at which its rungs below the full budget's end
    final_s: float = 0.0  # selection = "cv": its share of its (method, K, seed)'s final run, within `seconds`
    done: float = 0.0  # a resumed study: the share of `seconds` done already (mark_done); the plan counts the rest
    cv_done: tuple[float, bool] = (0.0, False)  # selection = "cv", resumed: its fold runs' share done; its final's


@dataclass
class Plan:
    spec: StudySpec
    precision: str  # the extraction precision extract-features will likely use (auto guessed here: estimates only)
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

    def reads_maps(self, aux: str) -> bool:
        """A run of `aux` reads spatial maps: the caches hold them and the method can use them."""
        return self.spatial_hw is not None and can_use_maps(aux)

    @property
    def patch_inputs(self) -> int:
        """Patch crops per image (V x grid^2 with the patches view, else 0)."""
        return self.spec.num_views * self.spec.patch_grid ** 2 if "patches" in self.spec.kinds else 0

    @property
    def input_cost(self) -> float:
        """Backbone inputs per image in full-size equivalents (study.plan.costs.input_equivalents)."""
        patch_px = self.spec.patch_geometry()[1] if self.patch_inputs else 0
        return input_equivalents(self.per_image - self.patch_inputs, self.patch_inputs, patch_px, self.spec.image_size)

    @property
    def train_rows(self) -> Rows:
        return study_rows(self.spec, self.splits["train"].images, self.classes, None)


def likely_extraction_precision(asked: str) -> str:
    """For the plan's estimates only: extract-features' own rule (extract.precision.resolve_precision) applied to
    what can be seen here without TensorFlow (a CUDA device torch sees stands in for TensorFlow's GPU list; the
    CPU's flags). The study hands extract-features the asked value; extraction resolves it where it runs and
    records what it used in the cache's config, which the report states."""
    if asked != "auto":
        return asked
    import torch

    from extract.precision import Devices, resolve_precision  # no TensorFlow

    gpus = ("a CUDA device torch sees",) if torch.cuda.is_available() else ()
    return resolve_precision(asked, Devices(gpus, cpu_has_native_bf16(), cpu_model_name()))


def resolve_heads(spec: StudySpec) -> tuple[str, str]:
    """(device, precision) the sweep will use (heads' own rules), resolved once per plan: the precision is concrete
    (fp32, bf16 or fp16), what every run gets (sweep_plan)."""
    from heads.training.experiment import device_of
    from heads.training.step import resolve_precision

    device = device_of(spec.device)
    return str(device), resolve_precision(spec.heads_precision, device)


def read_splits(spec: StudySpec) -> tuple[dict[str, Split], int, list[str]]:
    """Split sizes from the dataset's files ([dataset] name through pipeline.datasets.load_dataset); CUB's
    published counts when it is still to be downloaded."""
    from pipeline.datasets import load_dataset

    if not dataset_present(spec):
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
        splits[name] = Split(name, len(data), data.image_id, data.label, list(data.class_names))
        classes = len(data.class_names)
    check_input(spec)
    return splits, classes, []


def check_input(spec: StudySpec) -> None:
    """Before any work: no file in two splits (pipeline.datasets.integrity; extract-features also hashes the bytes
    and the report states what it found), and a folder dataset's val/ is not silently left out: the study draws its
    validation rows from train/ ([heads] val_fraction / val_per_class), so images in val/ are refused with how to use
    them."""
    from pipeline.datasets import load_dataset
    from pipeline.datasets.integrity import check_one_split_per_file

    where = f"{spec.path}: [dataset] {spec.dataset} at {spec.data_root}"
    try:
        check_one_split_per_file(load_dataset(spec.dataset, spec.data_root, "all", check_images=False,
                                              **spec.dataset_options))
    except PipelineError as e:
        raise PipelineError(f"{where}: {e}") from None
    if spec.dataset != "folder":
        return
    try:
        val = load_dataset("folder", spec.data_root, "val", check_images=False, **spec.dataset_options)
    except PipelineError:
        return  # no val rows
    raise PipelineError(
        f"{where}: {len(val)} images in the val split, which a study does not use (it draws validation rows from "
        "train by [heads] val_fraction or val_per_class): move the val class folders' images into train/ to let the "
        "study draw from them, or select on val yourself with extract-features --dataset folder --split trainval "
        "(and --split test), then sweep-heads, which selects on the val rows of a trainval cache")


def check_validation_rows(spec: StudySpec, train: Split) -> None:
    """Refuse before any work a validation rule the training split cannot serve (heads.training.data.stratified_split's
    own rule, on the split's real labels), naming the spec key."""
    from heads.training.data import stratified_split

    if train.label is None or not len(train.label) or spec.selection == "cv":
        return
    try:
        stratified_split(train.label, spec.val_fraction, 0, spec.val_per_class)
    except PipelineError as e:
        key = "val_per_class" if spec.val_per_class else "val_fraction"
        raise PipelineError(f"{spec.path}: [heads] {key}: {str(e).split(': ', 1)[1]}") from None


def dataset_present(spec: StudySpec) -> bool:
    """CUB: images.txt at the root; another dataset: its root exists (its reader says what is missing)."""
    return (spec.data_root / "images.txt").is_file() if spec.dataset == "cub" else spec.data_root.is_dir()


def expected_config(spec: StudySpec, split: str) -> dict[str, Any]:
    """The cache config keys the spec determines (extract-features adds its preprocessing and a dataset fingerprint).
    With precision "auto" any precision extraction resolved is accepted (inspect_cache)."""
    expected = {"backbone": spec.backbone, "image_size": spec.image_size, "split": split, "seed": spec.backbone_seed,
                "views": spec.views_config(), "spatial": spec.spatial, "precision": spec.precision}
    if spec.backbone_weights is not None:  # a torch backbone: its weights, as the cache's `model` records them
        expected[MODEL_WEIGHTS] = weights_record(spec.backbone_weights)
    return expected


MODEL_WEIGHTS = "model.weights"  # an expected_config key read from the cache config's `model` record


def weights_record(weights: str) -> str:
    """What a cache's config.model.weights says of `[backbone] weights`: "random", or the file's sha256."""
    from extract.backbone_names import RANDOM_WEIGHTS
    from extract.torch_weights import file_sha256

    return RANDOM_WEIGHTS if weights == RANDOM_WEIGHTS else "sha256:" + file_sha256(weights)


def inspect_cache(path: Path, expected: dict[str, Any], split: Split) -> CacheState:
    """Missing, incomplete (extract-features resumes it), complete and matching (reused), or a mismatch."""
    if not path.exists():
        return CacheState(path, "missing")
    try:
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["config"])
            complete = bool(f.attrs.get("complete")) and ("done" not in f or bool(f["done"][...].all()))
            config_hash = str(f.attrs.get("config_hash"))
            done = int(f["done"][...].sum()) if "done" in f else 0
            rows = (f["image_id"][...], f["label"][...]) if "image_id" in f else (None, None)
    except (OSError, KeyError, ValueError) as e:
        raise PipelineError(f"{path}: exists but is not a readable feature cache ({str(e).splitlines()[0]}); "
                            "move it away or choose another [extraction] features directory") from None
    if expected.get("precision") == "auto":  # extraction resolved it where it ran: any is what was asked for
        expected = {**expected, "precision": config.get("precision")}
    found = {k: (config.get("model") or {}).get("weights") if k == MODEL_WEIGHTS else config.get(k) for k in expected}
    differences = diff_keys(found, expected, labels=("in the cache", "in the spec"))
    if split.image_id is not None and rows[0] is not None and not (
            np.array_equal(rows[0], split.image_id) and np.array_equal(rows[1], split.label)):
        differences.append(f"rows (its image ids and labels are not the {split.name} split of the dataset root)")
    if differences:
        return CacheState(path, "mismatch", differences, config_hash)
    return CacheState(path, "complete" if complete else "incomplete", [], config_hash, done)


def study_rows(spec: StudySpec, n_train_split: int, classes: int, k: K) -> Rows:
    """Training, labelled and validation rows of one run: heads.training.data's own split and label rules
    (stratified_split, labelled_subset) applied to a split of `n_train_split` rows in `classes` classes of
    (nearly) equal size."""
    from heads.training.data import labelled_subset, stratified_split

    label = np.sort(np.arange(n_train_split) % max(classes, 1))
    train, val = stratified_split(label, spec.val_fraction, 0, spec.val_per_class)
    labelled, _short = labelled_subset(label, train, k, 0)
    return Rows(len(train), len(labelled), len(val), spec.batch_size)


def sweep_plan(spec: StudySpec, heads_precision: str, cv: bool = True) -> Any:
    """The study's sweep as heads.search.grid plans it (heads.search.sweep's engine trains it): runs named by every option off
    heads' defaults (heads.search.grid.off_default_names), so a grown study finds its finished runs under the same names;
    every run at `heads_precision`, the concrete value resolve_heads resolved once (precision is not in the names);
    under selection = "cv" (and `cv`) each (setting, seed) as its fold runs."""
    from heads.options import MethodOptions
    from heads.search.grid import off_default_names, plan_grid
    from heads.spec import RunSpec

    from study.spec import FIXED_IN_HEADS

    shared = MethodOptions.of({"val_fraction": spec.val_fraction, "val_per_class": spec.val_per_class,
                               "patience": spec.patience})
    grid = {aux: {**options, "precision": [check_resolved(heads_precision)]} for aux, options in spec.grid.items()}
    return plan_grid(spec.name, spec.out / SWEEP, spec.methods, spec.seeds, grid, RunSpec("", 0, shared, True, "study"),
                     off_default_names(FIXED_IN_HEADS), sweep_settings(spec, cv))


def sweep_settings(spec: StudySpec, cv: bool = True) -> Any:
    """The study's sweep settings (heads.search.settings.SweepSettings) straight from its [heads] keys; `cv` False
    plans a cross-validated sweep's runs without their folds."""
    from heads.search.settings import LaunchSettings, SweepSettings

    launcher = None if spec.launcher in (None, "in-process") else spec.launcher
    return SweepSettings(spec.keep_weights, spec.search, spec.halving_eta, spec.halving_rungs,
                         spec.selection if cv else "val", spec.cv_folds if cv else None, spec.device,
                         launch=LaunchSettings(launcher, spec.workers) if launcher else LaunchSettings())


def plan_runs(spec: StudySpec, heads_precision: str) -> tuple[list[RunPlan], list[str]]:
    """Every (setting, seed) in sweep order (seed-major, as sweep-heads runs them), and grid notes."""
    grid = sweep_plan(spec, heads_precision, cv=False)
    runs = [RunPlan(r.setting.aux, r.spec.k, r.seed, r.label, r.spec.options, r)
            for r in grid.runs]
    if spec.search == "halving":
        _halving_marks(spec, grid.settings, runs)
    return runs, grid.notes


def finished_epochs(run_dir: Path) -> tuple[int, int | None] | None:
    """(epochs trained, the epoch after which the epoch rule stopped it or None) of a finished run directory (its
    metrics.json); None while it is not finished."""
    from heads.training import artifacts

    if not artifacts.is_complete(run_dir):
        return None
    c = artifacts.read_json(run_dir / "metrics.json").get("convergence") or {}
    stopped = c.get("stopped_early_after")
    return int(c.get("epochs_trained") or 0), int(stopped) if stopped else None


def mark_done(spec: StudySpec, runs: list[RunPlan]) -> None:
    """A resumed study: the share of each run's estimate done already (RunPlan.done). Grid: a finished run's whole.
    Halving: its group's (method, K, seed) epochs trained against the group's expected epochs (its survivors train
    on; a run the epoch rule stopped in the full budget's rung counts its ceiling). Cross-validation: its fold runs
    finished (cv_done; study.plan.estimates.add_cv_costs weighs them against its share of the final run)."""
    if spec.selection == "cv":
        return _cv_marks(spec, runs)
    halving = spec.search == "halving"
    expected: dict[tuple, float] = {}
    trained: dict[tuple, float] = {}
    for run in runs:
        key = (run.aux, run.k, run.seed)
        expected[key] = expected.get(key, 0.0) + (run.epochs or spec.epochs)
        run_dir = getattr(run.planned, "run_dir", None)
        finished = finished_epochs(run_dir) if run_dir is not None else None
        if finished is None:
            continue
        if not halving:
            run.done = 1.0
            continue
        epochs, stopped = finished
        trained[key] = trained.get(key, 0.0) + (spec.epochs if stopped and epochs > run.full_from else epochs)
    if halving:
        for run in runs:
            key = (run.aux, run.k, run.seed)
            run.done = min(trained.get(key, 0.0) / expected[key], 1.0) if expected[key] else 0.0


def _cv_marks(spec: StudySpec, runs: list[RunPlan]) -> None:
    """Under selection = "cv", each run's fold runs finished (heads.search.cv.fold_name) and whether its (method, K,
    seed)'s final run (heads.search.cv.final_name, of whichever setting selection chose) has: RunPlan.cv_done."""
    from heads.search.cv import fold_name, folds_for

    finals: dict[tuple, bool] = {}
    for run in runs:
        run_dir = getattr(run.planned, "run_dir", None)
        if run_dir is None:
            continue
        folds = folds_for(run.k, spec.cv_folds)
        done = sum(finished_epochs(run_dir.with_name(fold_name(run.label, run.seed, folds, f))) is not None
                   for f in range(1, folds + 1))
        key = (run.aux, run.k, run.seed)
        finals[key] = finals.get(key, False) or cv_final_finished(spec, run)
        run.cv_done = (done / folds, False)
    for run in runs:
        run.cv_done = (run.cv_done[0], finals.get((run.aux, run.k, run.seed), False))


def cv_final_finished(spec: StudySpec, run: RunPlan) -> bool:
    """Under selection = "cv": has `run`'s setting trained its (method, K, seed)'s final run (heads.search.cv.final_name,
    at whatever epochs selection chose) to the end."""
    from heads.search.cv import final_name, folds_for

    run_dir = getattr(getattr(run, "planned", None), "run_dir", None)
    if run_dir is None or not run_dir.parent.is_dir():
        return False
    pattern = final_name(run.label, run.seed, folds_for(run.k, spec.cv_folds), "*")
    return any(finished_epochs(d) is not None for d in run_dir.parent.glob(pattern))


def _halving_marks(spec: StudySpec, settings: list[Any], runs: list[RunPlan]) -> None:
    """Which runs successive halving may stop, each run's expected epochs (its group's mean; a survivor
    continues from its rung, heads.training.rungs), the rungs it is expected to train in (each writes its run
    directory again), and its chance of the full budget's rung with the epochs it enters it at (where the epoch
    rule may stop it: the live ETA's expected unspent epochs)."""
    from heads.search.halving import halving_budget, setting_cell, stoppable

    may = stoppable(settings)
    sizes: dict[Any, int] = {}
    for s in settings:
        sizes[setting_cell(s)] = sizes.get(setting_cell(s), 0) + 1
    for i, run in enumerate(runs):
        s = settings[i % len(settings)]
        run.stoppable = may[i % len(settings)]
        budget = halving_budget(sizes[setting_cell(s)], 1, spec.epochs, spec.halving_eta, spec.halving_rungs)
        run.epochs = budget.expected_epochs_per_run
        run.ends = sum(n for _e, n in budget.rungs) / budget.runs
        run.full = budget.rungs[-1][1] / budget.runs  # (the last rung is the full budget's)
        run.rungs = tuple(e for e, _n in budget.rungs[:-1])
        run.full_from = run.rungs[-1] if run.rungs else 0


def first_settings(spec: StudySpec) -> list[tuple[str, Any]]:
    """(method, typed options) of the first grid setting of each cost the calibration measures
    (study.plan.costs.method_key)."""
    from heads.options import MethodOptions
    from heads.methods.registry import declaration
    from heads.search.grid import expand

    out: dict[str, tuple[str, Any]] = {}
    for s in expand(spec.grid)[0]:
        typed = MethodOptions.of(s.options, declaration(s.aux).own_options)
        out.setdefault(method_key(s.aux, False, typed), (s.aux, typed))
    return list(out.values())


def make_plan(spec: StudySpec) -> Plan:
    """Everything `--plan` prints except the timings (those need `calibrate`)."""
    precision = likely_extraction_precision(spec.precision)
    device, heads_precision = resolve_heads(spec)
    splits, classes, notes = read_splits(spec)
    caches = {s: inspect_cache(p, expected_config(spec, s), splits[s])
              for s, p in (("train", spec.train_cache), ("test", spec.test_cache))}
    dim, hw = DEFAULT_DIM, (math.ceil(spec.image_size / STRIDE),) * 2
    for state in caches.values():  # a cache already there knows its real shapes
        if state.status in ("complete", "incomplete"):
            dim, hw = _cache_shapes(state.path, dim, hw)
    check_validation_rows(spec, splits["train"])
    runs, grid_notes = plan_runs(spec, heads_precision)
    mark_done(spec, runs)
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
    from study.plan.calibrate import calibrate_heads, probe_backbone, saved_calibration_verdict

    spec = plan.spec
    key, remeasured = calibration_key(plan), ""
    if saved is not None and saved.is_file():
        data = json.loads(saved.read_text())
        reuse, note = saved_calibration_verdict(data["calibration"])  # study.plan.load: a loaded one is not kept silently
        if (data.get("key") == key and (quick or not data.get("quick"))
                and (data["calibration"].get("backbone_inputs_per_s") or not backbone) and reuse):
            plan.calibration = Calibration.from_json(data["calibration"])
            plan.calibration.quick = bool(data.get("quick"))
            plan.calibration.reuse_note = f"{saved}: {note}"
            _probed_shapes(plan, plan.calibration)
            return plan.calibration
        remeasured = f"{saved}: {note}" if data.get("key") == key and not reuse else ""
    calibration = Calibration(quick=quick)
    calibration.reuse_note = remeasured
    if backbone and any(c.status != "complete" for c in plan.caches.values()):
        probe_backbone(probe_argv(spec, spec.precision), calibration)  # resolved by the probe, as by extraction
        _probed_shapes(plan, calibration)  # the heads are timed at the width (and map) the backbone gives
    shapes = {"n_train": plan.train_rows.train, "n_val": plan.train_rows.val, "n_test": plan.splits["test"].images,
              "dim": plan.dim, "classes": plan.classes, "views": spec.num_views, "spatial_hw": plan.spatial_hw,
              "kinds": spec.kinds, "rcm_grid": spec.rcm_grid, "patch_grid": spec.patch_grid, "epochs": spec.epochs,
              "seeds": len(spec.seeds), "class_names": plan.splits["test"].class_names}
    calibrate_heads(first_settings(spec), shapes, spec.batch_size, plan.heads_precision, spec.spatial, calibration,
                    quick=quick)
    plan.calibration = calibration
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        from heads.training.artifacts import write_json

        write_json(saved, {"key": key, "calibration": calibration.to_json(), **({"quick": True} if quick else {})})
    return calibration


def _probed_shapes(plan: Plan, calibration: Calibration) -> None:
    """Where no cache is there to tell them, the feature width and map grid the backbone probe measured (a ViT's
    768 and 14 x 14, not ResNet-50's 2048 and S/32) replace the plan's defaults."""
    if any(c.status in ("complete", "incomplete") for c in plan.caches.values()):
        return
    dim, hw = calibration.backbone.get("feature_dim"), calibration.backbone.get("spatial_shape")
    if dim:
        plan.dim = int(dim)
    if hw and plan.spatial_hw is not None:
        plan.spatial_hw = (int(hw[0]), int(hw[1]))


def calibration_key(plan: Plan) -> dict[str, Any]:
    spec = plan.spec
    return {"methods": spec.methods, "grid": {a: {k: [str(x) for x in v] for k, v in o.items()} for a, o in spec.grid.items()},
            "rows": [plan.splits["train"].images, plan.splits["test"].images], "classes": plan.classes, "dim": plan.dim,
            "spatial": list(plan.spatial_hw) if plan.spatial_hw else None, "views": spec.views_config(),
            "batch": spec.batch_size, "precision": [plan.precision, plan.heads_precision], "device": plan.device,
            "backbone": spec.backbone, "weights": spec.backbone_weights, "backbone_device": spec.backbone_device,
            "image_size": spec.image_size, "cpu": cpu_model_name()}


def probe_argv(spec: StudySpec, precision: str) -> list[str]:
    return ["--backbone", spec.backbone, "--image-size", str(spec.image_size), "--precision", precision,
            "--seed", str(spec.backbone_seed), "--model-cache", str(spec.model_cache),
            "--batch", str(max(1, spec.extract_batch_size // 2))] + (["--spatial"] if spec.spatial else []) + \
        spec.backbone_argv()
