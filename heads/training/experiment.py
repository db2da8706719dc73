"""One runner for every run: prepare, write config.json, fit, record, finish (and score the test split once).

`run_specs` is the only function that trains: a single run (`train-heads`), a sweep's run, a bank of heads
that share one batch stream (heads.training.bank), a cross-validation fold or final run (its rows:
heads.training.rows) and a halving rung (a spec that stops early, continued from its saved state:
heads.training.rungs) all go through it, each described by its typed `heads.spec.RunSpec`. Caches are read and
checked once per process (`Caches.load`) and shared by every run. A run directory is written under
`<name>.partial` and renamed into place when its artifacts are complete, so a directory without the suffix is
always a finished run.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from pipeline import CREATED_BY
from pipeline.reader import FeatureCache
from pipeline.errors import PipelineError
from pipeline.precision import check_resolved

from heads.training import artifacts, rungs

from heads.training import figures
from heads.training.health import run_health
from heads.training.epochs import DEFAULT_PATIENCE, RULE as EPOCH_RULE, still_improving
from heads.training.data import FeatureTable, Scaler, load_caches
from heads.methods.method import Method
from heads.methods.registry import DECLARATIONS, METHODS, declaration
from heads.training.metrics import classification_metrics, confusion
from heads.options import OPTIONS_BY_NAME, MethodOptions, defaults
from heads.training.pairing import read_role_cache as read_cache
from heads.spec import RunSpec
from heads.training.rows import FINAL_EPOCH_RULE, FOLD_EPOCH_RULE, note_short_classes, run_rows
from heads.training.step import Diverged, predict, TrainOptions
from heads.training.train import fit_heads, TrainResult

T0 = time.time()  # process start, for the first-step timing in metrics.json
EPOCH_SELECTION_RULE = EPOCH_RULE
VAL_LOSSES = "val_losses.npy"  # (epochs, validation rows) per-image validation losses


def device_of(name: str) -> torch.device:
    """--device: auto (CUDA when present), cpu, cuda or cuda:N; anything else is one clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PipelineError(f"--device: expected auto, cpu, cuda or cuda:N, found {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise PipelineError(f"--device: expected auto, cpu, cuda or cuda:N, found {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PipelineError(f"--device {name}: CUDA is not available on this machine")
    return device


def build_method(aux: str, options: MethodOptions, cache: FeatureCache,
                 train_rows: np.ndarray | None = None) -> Method:
    """The `aux` method for this cache: its typed options completed with what the training cache says."""
    if aux not in METHODS:
        raise PipelineError(f"--aux: expected one of {', '.join(METHODS)}, found {aux!r}")
    typed = dataclasses.replace(options, views=cache.config["views"], spatial_kinds=tuple(cache.spatial_kinds),
                                train_rows=train_rows)
    try:
        return METHODS[aux](typed, cache.num_classes, cache.feature_dim, len(cache))
    except ValueError as e:
        raise PipelineError(str(e)) from None


def builder_record(spec: RunSpec, cache: FeatureCache) -> dict[str, Any]:
    """config.json's "builder_options": what evaluate-heads rebuilds the method from (heads.methods.registry)."""
    return {**spec.record(), "views": cache.config["views"], "spatial_kinds": list(cache.spatial_kinds)}


def method_needs(aux: str, meta: FeatureCache) -> set[str]:
    """What the `aux` method reads: with options that change it (its declaration's `reads_options`, e.g.
    --pirl-form), every choice the training cache can serve; when it serves none, the first choice's
    (load_caches then says what is missing) or the first choice's own error."""
    names = list(declaration(aux).reads_options)
    cached = set(meta.config["views"]["kinds"]) | {"spatial"}
    built, errors = [], []
    for combo in itertools.product(*(OPTIONS_BY_NAME[n].type.choices for n in names)):
        try:
            typed = MethodOptions.of({**defaults(aux), **dict(zip(names, combo)), "seed": 0})
            built.append(set(build_method(aux, typed, meta).needs))
        except PipelineError as e:
            errors.append(e)
    served = [n for n in built if n - {"spatial"} <= cached]
    if served or built:
        return set().union(*served) if served else built[0]
    raise errors[0]


@dataclass
class Caches:
    """Both caches, read and checked once, and their arrays as tensors on the training device."""

    train: FeatureCache
    test: FeatureCache
    table: FeatureTable
    test_table: FeatureTable
    device: torch.device

    @classmethod
    def load(cls, train_path: str, test_path: str, auxes: Iterable[str], device: torch.device,
             log: Callable[[str], None] = print, maps_in_memory: str = "auto") -> "Caches":
        """Read what every aux choice in `auxes` needs (views, spatial maps), check it, move it to `device`
        (spatial maps in memory or out of core: --maps-in-memory, heads.training.data.keep_maps_in_memory)."""
        meta = read_cache(train_path, kinds=[], role="--train")
        needs_by_aux = {aux: method_needs(aux, meta) for aux in auxes}
        train, test = load_caches(train_path, test_path, needs_by_aux, meta)
        needs = set().union(*needs_by_aux.values())
        for d in DECLARATIONS:
            if d.maps and d.aux in needs_by_aux and "spatial" not in needs_by_aux[d.aux]:
                log(f"note: {train_path} holds no spatial maps, so --aux {d.aux} {d.without_maps}")
        return cls(train, test, FeatureTable.from_cache(train, needs, device, maps_in_memory),
                   FeatureTable.from_cache(test, needs & {"spatial"}, device, maps_in_memory), device)


@dataclass
class RunResult:
    run_dir: Path
    spec: RunSpec
    best_epoch: int
    epochs: int
    val: dict[str, float] | None  # validation metrics of the selected epoch (with "loss")
    train_seconds: float
    test: dict[str, float] | None = None  # only when the test split was scored
    untrained: bool = False
    weights: str = "?"
    health: str = ""  # heads.training.health's state of the run


def top5_of(logits: torch.Tensor) -> np.ndarray:
    return logits.topk(min(5, logits.shape[1]), dim=1).indices.numpy()


@dataclass
class Prepared:
    """One run before training: its spec, rows, method, standardisation, loop options and config.json."""

    spec: RunSpec
    rows: dict[str, Any]  # heads.training.rows.run_rows: "train", "val", "labelled", "k", "validation", "short"
    method: Method
    scaler: Scaler
    train_options: TrainOptions
    config: dict[str, Any]


def train_options_of(spec: RunSpec, precision: str) -> TrainOptions:
    """The training loop's options from a run's spec."""
    o = spec.options
    return TrainOptions(epochs=o.epochs, batch_size=o.batch_size, lr=o.lr, weight_decay=o.weight_decay,
                        momentum=o.momentum, warmup_epochs=o.warmup_epochs, grad_clip=o.grad_clip, seed=spec.seed,
                        precision=precision, stop_after=spec.stop_after,  # a halving rung: the full schedule, cut short
                        # cross-validation folds train their whole curve (heads.search.cv chooses the epoch count on it)
                        patience=0 if spec.fold is not None else o.patience)


def run_config(caches: Caches, spec: RunSpec, rows: dict[str, Any], method: Method, precision: str) -> dict[str, Any]:
    """config.json of a run: options, resolved device and precision, caches, rows and labels, the model."""
    train, train_rows, val_rows, labelled = caches.train, rows["train"], rows["val"], rows["labelled"]
    config = {
        "command": spec.command,
        "package": CREATED_BY,
        "torch": str(torch.__version__),
        "options": spec.record(),
        "builder_options": builder_record(spec, train),
        "resolved": {"device": str(caches.device), "precision": precision,
                     "maps_in_memory": caches.table.maps_in_memory, "views_in_memory": caches.table.views_in_memory},
        "train_cache": artifacts.cache_summary(train),
        "test_cache": artifacts.cache_summary(caches.test),
        "backbone_untrained": train.untrained,
        "num_classes": train.num_classes,
        "feature_dim": train.feature_dim,
        "num_train_cache_rows": len(train),
        "rows": {"train": len(train_rows), "val": len(val_rows), "test": len(caches.test),
                 "labelled": len(labelled), "unlabelled": len(train_rows) - len(labelled)},
        "validation": rows["validation"],
        "val_image_ids": train.image_id[val_rows].tolist(),
        "labels": {
            "labels_per_class": "all" if rows["k"] is None else rows["k"],
            "val_per_class": spec.options.val_per_class,
            "val_fraction": spec.options.val_fraction,
            "labelled_rows": len(labelled),
            "unlabelled_rows": len(train_rows) - len(labelled),
            "classes_with_fewer_than_k_rows": rows["short"],
            "per_class": rows["counts"],  # what was used: training, validation and labelled rows per class (min, max)
            "labelled_image_ids": "all training rows" if rows["k"] is None else train.image_id[labelled].tolist(),
        },
        "selection": EPOCH_SELECTION_RULE,
        "model": repr(method),
    }
    if spec.fold is not None:
        config.update({"cross_validation": rows["cv"],
                       "selection": FINAL_EPOCH_RULE if spec.fold.fold is None else FOLD_EPOCH_RULE})
    return config


def prepare_experiment(caches: Caches, spec: RunSpec, log: Callable[[str], None] | None,
                       scaler: Scaler | None = None) -> Prepared:
    """Split the rows for the seed (or the fold), build the method (seeded), fit its input transform and the
    standardisation on the training rows, compose config.json. `scaler`: the standardisation already fitted on
    these training rows (a bank's heads share one)."""
    train, device = caches.train, caches.device
    precision = check_resolved(spec.options.precision)  # resolved once, by the command or the study
    rows = run_rows(train, spec)
    note_short_classes(rows, log, spec)
    torch.manual_seed(spec.seed)
    method = build_method(spec.method, spec.options, train, rows["train"])
    method.to(device)
    if scaler is None:
        scaler = (Scaler.fit(train.features["original"], rows["train"]) if spec.standardize
                  else Scaler.identity(train.feature_dim)).to(device)
    prepare = getattr(method, "prepare_inputs", None)  # a fixed input transform (DCL's --dcl-pca): training rows only
    inputs = prepare(caches.table, rows["train"], spec.seed) if prepare is not None else None
    config = run_config(caches, spec, rows, method, precision)
    if inputs is not None:
        config["input_transform"] = inputs
    return Prepared(spec, rows, method, scaler, train_options_of(spec, precision), config)


def validation_metrics(train: FeatureCache, val_rows: np.ndarray, result: TrainResult
                       ) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """(validation metrics of the selected epoch with "loss", confusion.json with its "val" matrix)."""
    confusions: dict[str, Any] = {"class_names": train.class_names}
    if not len(val_rows):
        return None, confusions
    val_top5 = top5_of(result.best_val["logits"])
    confusions["val"] = confusion(train.label[val_rows], val_top5[:, 0], train.num_classes).tolist()
    return {**classification_metrics(train.label[val_rows], val_top5), "loss": result.best_val["loss"]}, confusions


def record_experiment(caches: Caches, prep: Prepared, partial: Path, result: TrainResult, train_seconds: float,
                      first_step: list[float]) -> tuple[dict[str, Any], dict[str, float] | None]:
    """Write confusion.json, history.csv, model.pt and curves.png; (metrics.json's content, val metrics)."""
    train = caches.train
    val_metrics, confusions = validation_metrics(train, prep.rows["val"], result)
    convergence = convergence_of(result, prep.train_options)
    metrics = {
        "val": val_metrics,
        "test": None,
        "best_epoch": result.best_epoch,
        "epochs": prep.train_options.epochs,
        "convergence": convergence,
        "health": run_health(result.history, train.num_classes, result.best_epoch, val_rows=len(prep.rows["val"]),
                             convergence=convergence),
        "aux": prep.spec.method,
        "backbone_weights": str(train.attrs.get("backbone_weights", "?")),
        "backbone_untrained": train.untrained,
        "timing": {"first_step_unix": first_step[0] if first_step else None,
                   "seconds_to_first_step": first_step[0] - T0 if first_step else None,
                   "train_seconds": train_seconds, "total_seconds": time.time() - T0},
    }
    artifacts.write_json(partial / "confusion.json", confusions, compact=True)
    artifacts.write_history(partial / "history.csv", result.history)
    if result.val_losses and len(result.val_losses[0]):  # the epoch rule's input: its choice can be recomputed
        np.save(partial / VAL_LOSSES, np.stack(result.val_losses).astype(np.float32))
    artifacts.save_model(partial / "model.pt", result.best_state, prep.scaler.state_dict(),
                         {**prep.config, "best_epoch": result.best_epoch})
    figures.plot_curves(result.history, partial / "curves.png", result.best_epoch, title=run_title(prep.spec))
    return metrics, val_metrics


def convergence_of(result: TrainResult, opts: TrainOptions) -> dict[str, Any]:
    """metrics.json's "convergence": the ceiling, the epochs trained, whether and when the epoch rule stopped the
    run, and whether validation was still improving at the ceiling (heads.training.epochs)."""
    out: dict[str, Any] = {"ceiling": opts.epochs, "patience": opts.patience, "epochs_trained": len(result.history),
                           "stopped_early_after": result.stopped_early}
    judged = still_improving(result.val_losses, opts.epochs)
    if judged is not None:
        out["still_improving"] = judged
    return out


def run_specs(caches: Caches, jobs: list[tuple[RunSpec, Path]], *, progress: bool = False,
              log: Callable[[str], None] | None = None, score_test: bool = False,
              data_root: str | None = None, between_epochs: Callable[[], None] | None = None
              ) -> list[RunResult | Diverged]:
    """Train runs on one batch stream and write each one's directory: one run, or a bank of heads on the same rows
    (heads.training.bank: they share the first one's standardisation). Per run, in order: its RunResult, or the
    Diverged error of a run whose loss turned NaN or inf (nothing written: the caller records it).

    The steps, once for every kind of run: prepare (rows, method, input transform, standardisation, config.json),
    fit (heads.training.train.fit_heads; a halving rung resumes from its saved state), record the kept epoch
    (metrics, history, model.pt, curves), keep a rung's state, then finish. With `score_test` (train-heads) the
    kept weights are scored on the test split here, once; a sweep scores only the runs it selects, after
    selecting (`score_saved_run`). With --labels-per-class K only the K drawn rows of each class reach the
    cross-entropy; the standardisation statistics come from every training row's features (no label)."""
    first = prepare_experiment(caches, jobs[0][0], log)
    preps = [first] + [prepare_experiment(caches, spec, None, first.scaler) for spec, _ in jobs[1:]]
    resumes = rungs.resumes_for([(spec, run_dir) for spec, run_dir in jobs])
    for prep, (_, run_dir) in zip(preps, jobs):  # under .partial until finished: a killed run is redone
        artifacts.write_json(artifacts.begin_run(run_dir) / "config.json", prep.config)
    first_step: list[float] = []
    started = time.time()
    rows = first.rows
    results = fit_heads([p.method for p in preps], caches.table, rows["train"], rows["val"], first.scaler,
                        [p.train_options for p in preps], progress, lambda: first_step.append(time.time()),
                        rows["labelled"], resumes, between_epochs)
    seconds = (time.time() - started) / len(jobs)
    return [result if isinstance(result, Diverged) else
            write_run(caches, prep, run_dir, result, seconds, first_step, len(jobs), resumes[0] if resumes else None,
                      score_test, data_root)
            for (spec, run_dir), prep, result in zip(jobs, preps, results)]


def write_run(caches: Caches, prep: Prepared, run_dir: Path, result: TrainResult, seconds: float,
              first_step: list[float], heads: int, resume: dict[str, Any] | None, score_test: bool,
              data_root: str | None) -> RunResult:
    """One trained run's files, written into its .partial directory (begun with its config.json before the fit),
    which is then renamed into place; its RunResult."""
    prep.method.load_state_dict(result.best_state)
    partial = artifacts.partial_dir(run_dir)
    metrics, val_metrics = record_experiment(caches, prep, partial, result, seconds, first_step)
    if heads > 1:
        metrics["timing"]["bank"] = {"heads": heads, "shared_seconds": seconds * heads}
    keep_rung_state(partial, metrics, prep.spec, result, resume)
    test_metrics = None
    if score_test:
        test_metrics = score_test_split(caches, prep.method, prep.scaler, partial, metrics,
                                        prep.train_options.precision, prep.spec.seed, data_root)
    else:
        artifacts.write_json(partial / "metrics.json", metrics)
    artifacts.finish_run(partial, run_dir)
    rungs.rung_file(run_dir).unlink(missing_ok=True)  # continued (or superseded): the waiting state is spent
    return RunResult(run_dir, prep.spec, result.best_epoch, prep.train_options.epochs, val_metrics, seconds,
                     test_metrics, caches.train.untrained, metrics["backbone_weights"], metrics["health"]["state"])


def run_experiment(caches: Caches, spec: RunSpec, run_dir: Path, *, score_test: bool = True, progress: bool = False,
                   data_root: str | None = None, log: Callable[[str], None] | None = None) -> RunResult:
    """One run through `run_specs`; a loss that turned NaN or inf raises Diverged."""
    (result,) = run_specs(caches, [(spec, run_dir)], progress=progress, log=log, score_test=score_test,
                          data_root=data_root)
    if isinstance(result, Diverged):
        raise result
    return result


def keep_rung_state(partial: Path, metrics: dict[str, Any], spec: RunSpec, result: TrainResult,
                    resume: dict[str, Any] | None) -> None:
    """A halving rung's run saves the state its next rung continues from (heads.training.rungs); a continued run's
    timing says from which epoch (its train_seconds count the epochs it trained itself)."""
    if resume is not None:
        metrics["timing"]["continued_from_epoch"] = int(resume["epoch"])
    if result.rung_state is not None and rungs.wants_state(spec):
        rungs.save(partial / rungs.STATE_FILE, result.rung_state, spec)


def run_title(spec: RunSpec) -> str:
    """'--aux pirl, aux-weight 0.1, lr 0.1, seed 0': the figure title of a run."""
    options = spec.record()
    keys = [k for k in ("aux_weight", "classifier_input", "dcl_adv", "lr", "weight_decay", "epochs") if k in options]
    parts = [f"--aux {spec.method}"] + [f"{k.replace('_', '-')} {options[k]}" for k in keys]
    return ", ".join(parts + [f"seed {spec.seed}"])


def score_test_split(caches: Caches, method: Method, scaler: Scaler, run_dir: Path, metrics: dict[str, Any],
                     precision: str, seed: int, data_root: str | None) -> dict[str, float]:
    """Score the test split once with the selected weights; write predictions, confusion and metrics.json (last)."""
    test = caches.test
    rows = torch.arange(len(test), device=caches.device)
    top5 = top5_of(predict(method, caches.test_table, rows, 1024, scaler, precision))
    test_metrics = classification_metrics(test.label, top5)
    artifacts.write_predictions(run_dir / "predictions.csv", test.image_id, test.label, top5)
    confusion_file = run_dir / "confusion.json"
    confusions = artifacts.read_json(confusion_file) if confusion_file.is_file() else {"class_names": test.class_names}
    test_confusion = confusion(test.label, top5[:, 0], test.num_classes)
    confusions["test"] = test_confusion.tolist()
    artifacts.write_json(confusion_file, confusions, compact=True)
    figures.plot_confusion(test_confusion, test.class_names, run_dir / "confusion.png")
    image_dir = figures.find_images(test.paths, [Path(data_root)]) if data_root else None
    if image_dir is not None:
        figures.plot_gallery(image_dir, test.paths, test.image_id, test.label, top5[:, 0], test.class_names,
                           run_dir / "predictions.png", seed=seed)
    artifacts.write_json(run_dir / "metrics.json", {**metrics, "test": test_metrics})  # last: the run is scored
    return test_metrics


def load_trained(run: Path) -> tuple[Method, Scaler, dict[str, Any]]:
    """Rebuild a finished run's method from model.pt (selected weights, standardisation, config)."""
    model_file = run / "model.pt" if run.is_dir() else run
    artifacts.check_complete(model_file.parent)
    if not model_file.is_file():
        raise PipelineError(f"{model_file}: no model.pt (expected a train-heads run directory; a sweep keeps "
                            "weights for its selected runs only unless --keep-weights all)")
    saved = artifacts.load_model(model_file)
    config = saved["config"]
    aux = config["options"]["aux"]
    if aux not in METHODS:
        raise PipelineError(f"{model_file}: trained with --aux {aux}, unknown to this version")
    torch.manual_seed(0)
    method = METHODS[aux](dict(config["builder_options"]), config["num_classes"], config["feature_dim"],
                          config["num_train_cache_rows"])
    if getattr(method, "fixed", None) is not None and "fixed.1.mean" not in saved["state_dict"]:
        raise PipelineError(f"{model_file}: trained by an earlier version whose --aux {aux} did not standardise its "
                            "spatial maps (and whose adapter on them did not learn); retrain it")
    try:
        method.load_state_dict(saved["state_dict"])
    except RuntimeError as e:
        raise PipelineError(f"{model_file}: weights do not fit the --aux {aux} network "
                            f"({str(e).splitlines()[0][:160]})") from None
    return method, Scaler(saved["scaler"]["mean"], saved["scaler"]["std"]), config


def score_saved_run(caches: Caches, run: Path, data_root: str | None = None) -> dict[str, float]:
    """Score a finished, not yet tested run (a sweep's selected run) on the test split, from its model.pt."""
    method, scaler, config = load_trained(run)
    method.to(caches.device)
    metrics = artifacts.read_json(run / "metrics.json")
    return score_test_split(caches, method, scaler.to(caches.device), run, metrics, config["resolved"]["precision"],
                            int(config["options"]["seed"]), data_root)
