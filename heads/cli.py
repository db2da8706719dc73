"""`train-heads` and `evaluate-heads`: stage 2, PyTorch heads on cached features (never TensorFlow)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from pipeline import CREATED_BY
from pipeline.errors import PipelineError, fail, run_cli

from .methods import METHODS

T0 = time.time()  # for the first-step timing in metrics.json


def _device(name: str) -> "torch.device":  # noqa: F821
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def train_heads(options: dict[str, Any]) -> Path:
    """Check the caches, train, select the best validation epoch, test once, write the run directory."""
    import torch

    from pipeline.cache import read_cache

    from . import artifacts, plots
    from .data import FeatureTable, Scaler, load_caches, stratified_split
    from .metrics import classification_metrics, confusion
    from .train import TrainOptions, fit, predict, resolve_precision

    aux = options["aux"]
    device = _device(options["device"])
    precision = resolve_precision(options["precision"], device)
    opts = TrainOptions(epochs=options["epochs"], batch_size=options["batch_size"], lr=options["lr"],
                        weight_decay=options["weight_decay"], momentum=options["momentum"],
                        warmup_epochs=options["warmup_epochs"], seed=options["seed"], precision=precision)

    # 1. rows, split and method first (the method says which views to load), then the checked arrays
    meta = read_cache(options["train"], kinds=[])
    train_rows, val_rows = stratified_split(meta.label, options["val_fraction"], options["seed"])
    torch.manual_seed(options["seed"])
    # what a builder may read besides the options: the cache's view settings and spatial maps
    build_options = {**options, "views": meta.config["views"], "spatial_kinds": list(meta.spatial_kinds)}
    try:
        method = METHODS[aux]({**build_options, "train_rows": train_rows}, meta.num_classes, meta.feature_dim,
                              len(meta))
    except ValueError as e:
        raise PipelineError(str(e)) from None
    needs = set(method.needs)
    train, test = load_caches(options["train"], options["test"], needs, aux)
    if aux == "dcl" and "spatial" not in needs:
        click.echo(f"note: {options['train']} holds no spatial maps, so --aux dcl trains destruction learning only "
                   "(classification + adversarial); construction learning (region alignment) needs "
                   "extract-features --spatial", err=True)
    scaler = (Scaler.fit(train.features["original"], train_rows) if options["standardize"]
              else Scaler.identity(train.feature_dim)).to(device)
    table = FeatureTable.from_cache(train, needs, device)
    method.to(device)
    run_dir = artifacts.make_run_dir(options["out"], aux)
    untrained = train.untrained
    config = {
        "command": "train-heads",
        "package": CREATED_BY,
        "torch": str(torch.__version__),
        "options": dict(options),
        "builder_options": build_options,
        "resolved": {"device": str(device), "precision": precision},
        "train_cache": artifacts.cache_summary(train),
        "test_cache": artifacts.cache_summary(test),
        "backbone_untrained": untrained,
        "num_classes": train.num_classes,
        "feature_dim": train.feature_dim,
        "num_train_cache_rows": len(train),
        "rows": {"train": len(train_rows), "val": len(val_rows), "test": len(test)},
        "val_image_ids": train.image_id[val_rows].tolist(),
        "selection": "epoch with the best validation top-1 (ties: lower validation loss); test never used",
        "model": repr(method),
    }
    artifacts.write_json(run_dir / "config.json", config)
    weights = train.attrs.get("backbone_weights", "?")
    click.echo(f"train-heads --aux {aux}: {len(train_rows)} train + {len(val_rows)} val rows of {train.path}, "
               f"{len(test)} test rows of {test.path}; D={train.feature_dim}, C={train.num_classes}, "
               f"{device}, {precision}", err=True)
    if untrained:
        click.echo(f"note: {artifacts.weights_note(True, weights)}", err=True)

    # 2. train; the test split is not in reach of the loop
    started = time.time()
    first_step: list[float] = []
    result = fit(method, table, train_rows, val_rows, scaler, opts, progress=not options["quiet"],
                 on_first_step=lambda: first_step.append(time.time()))
    train_seconds = time.time() - started

    # 3. the selected weights, evaluated once on the test split
    method.load_state_dict(result.best_state)
    test_table = FeatureTable.from_cache(test, needs & {"spatial"}, device)
    test_rows = torch.arange(len(test), device=device)
    logits = predict(method, test_table, test_rows, opts.batch_size, scaler, precision)
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.numpy()
    test_metrics = classification_metrics(test.label, top5)
    val_metrics = None
    confusions: dict[str, Any] = {"class_names": test.class_names}
    if len(val_rows):
        val_logits = result.best_val["logits"]
        val_top5 = val_logits.topk(min(5, val_logits.shape[1]), dim=1).indices.numpy()
        val_metrics = {**classification_metrics(train.label[val_rows], val_top5), "loss": result.best_val["loss"]}
        confusions["val"] = confusion(train.label[val_rows], val_top5[:, 0], train.num_classes).tolist()
    test_confusion = confusion(test.label, top5[:, 0], test.num_classes)
    confusions["test"] = test_confusion.tolist()

    # 4. artifacts
    metrics = {
        "val": val_metrics,
        "test": test_metrics,
        "best_epoch": result.best_epoch,
        "epochs": opts.epochs,
        "aux": aux,
        "backbone_weights": weights,
        "backbone_untrained": untrained,
        "timing": {"first_step_unix": first_step[0] if first_step else None,
                   "seconds_to_first_step": first_step[0] - T0 if first_step else None,
                   "train_seconds": train_seconds, "total_seconds": time.time() - T0},
    }
    artifacts.write_json(run_dir / "metrics.json", metrics)
    artifacts.write_json(run_dir / "confusion.json", confusions)
    artifacts.write_history(run_dir / "history.csv", result.history)
    artifacts.write_predictions(run_dir / "predictions.csv", test.image_id, test.label, top5)
    artifacts.save_model(run_dir / "model.pt", result.best_state, scaler.state_dict(),
                         {**config, "best_epoch": result.best_epoch})
    plots.plot_curves(result.history, run_dir / "curves.png", result.best_epoch)
    plots.plot_confusion(test_confusion, test.class_names, run_dir / "confusion.png")
    image_dir = plots.find_images(test.paths, [Path(options["data_root"])])
    if image_dir is None:
        click.echo(f"predictions.png skipped: test images not found under {options['data_root']}/images "
                   "(set --data-root)", err=True)
    else:
        plots.plot_gallery(image_dir, test.paths, test.label, top5[:, 0], test.class_names,
                           run_dir / "predictions.png", seed=options["seed"])

    chosen = "by validation top-1" if len(val_rows) else "(the last: --val-fraction 0)"
    click.echo(f"\n--aux {aux}: best epoch {result.best_epoch}/{opts.epochs} {chosen}; "
               f"test split evaluated once with those weights")
    click.echo(artifacts.weights_note(untrained, weights))
    click.echo(artifacts.metrics_table({"val": val_metrics, "test": test_metrics}))
    click.echo(f"run directory: {run_dir}")
    return run_dir


def _negatives(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from .methods import parse_negatives

    try:
        parse_negatives(value)
    except ValueError as e:
        raise click.BadParameter(str(e).split(": ", 1)[-1]) from None
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--train", default="data/features/train.h5", help="Training feature cache (HDF5).")
@click.option("--test", default="data/features/test.h5", help="Test feature cache (HDF5); used once, at the end.")
@click.option("--aux", type=click.Choice(sorted(METHODS)), default="pirl", help="Auxiliary task: none = cross-entropy only.")
@click.option("--epochs", default=30, type=click.IntRange(1))
@click.option("--batch-size", default=256, type=click.IntRange(1))
@click.option("--lr", default=0.1, type=click.FloatRange(0, min_open=True), help="Peak learning rate (SGD).")
@click.option("--momentum", default=0.9, type=click.FloatRange(0, 1))
@click.option("--weight-decay", default=5e-4, type=click.FloatRange(0))
@click.option("--warmup-epochs", default=2, type=click.IntRange(0), help="Linear warm-up before the cosine decay.")
@click.option("--val-fraction", default=0.1, type=click.FloatRange(0, 1, max_open=True),
              help="Share of each class of the training cache held out to select the epoch (0: keep the last).")
@click.option("--seed", default=0, type=int, help="Seeds the split, initial weights, memory bank and batch order.")
@click.option("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
              help="Matrix products in bfloat16 autocast (auto: bf16 on CPUs with native bf16, else fp32).")
@click.option("--aux-weight", default=1.0, type=click.FloatRange(0), help="Total loss = CE + aux-weight x auxiliary loss.")
@click.option("--negatives", default="all", callback=_negatives,
              help="PIRL negatives: 'all' other bank entries, or a number K sampled per step.")
@click.option("--pirl-loss", type=click.Choice(["infonce", "nce"]), default="infonce",
              help="infonce: softmax cross-entropy; nce: the paper's binary NCE.")
@click.option("--temperature", default=0.07, type=click.FloatRange(0, min_open=True), help="PIRL temperature.")
@click.option("--dcl-adv", type=click.Choice(["binary", "swap"]), default="binary",
              help="DCL adversarial branch: binary = 2-way original/destructed discriminator; swap = 2C-way classifier.")
@click.option("--dcl-adv-weight", default=1.0, type=click.FloatRange(0), help="DCL: weight of the adversarial loss.")
@click.option("--dcl-align-weight", default=1.0, type=click.FloatRange(0),
              help="DCL: weight of the region-alignment L1 loss (needs a cache extracted with --spatial).")
@click.option("--dcl-test-logits", type=click.Choice(["original", "sum"]), default="original",
              help="DCL test predictions: the classifier on the original image, or the official code's sum "
                   "of classifier and swap logits (needs --dcl-adv swap).")
@click.option("--dcl-hidden", default=512, type=click.IntRange(1), help="DCL: width d of the shared adapter.")
@click.option("--standardize/--no-standardize", default=True,
              help="Standardise features per dimension with the training rows' mean and std.")
@click.option("--data-root", default="data/CUB_200_2011", help="CUB directory whose images/ the gallery reads.")
@click.option("--out", default="runs", help="Parent of the run directory <UTC timestamp>-<aux>/.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train_main(**options: Any) -> None:
    """Train the report's heads on cached features, select by validation, evaluate once on test."""
    try:
        train_heads(options)
    except PipelineError as e:
        fail(e)


def evaluate_run(run: Path, test_path: str | None) -> tuple[dict[str, float], dict[str, Any]]:
    """Rebuild a run's model from model.pt and recompute its test metrics."""
    import torch

    from pipeline.cache import read_cache

    from .artifacts import load_model
    from .data import FeatureTable, Scaler, check_finite
    from .metrics import classification_metrics
    from .train import predict

    model_file = run / "model.pt" if run.is_dir() else run
    if not model_file.is_file():
        raise PipelineError(f"{model_file}: no model.pt (expected a train-heads run directory)")
    saved = load_model(model_file)
    config = saved["config"]
    aux = config["options"]["aux"]
    if aux not in METHODS:
        raise PipelineError(f"{model_file}: trained with --aux {aux}, unknown to this version")
    test = read_cache(test_path or config["test_cache"]["path"], kinds=["original"])
    check_finite(test)
    if test.attrs.get("config_hash") != config["test_cache"]["config_hash"]:
        raise PipelineError(f"{test.path}: config_hash {test.attrs.get('config_hash')}, but {model_file} was "
                            f"tested on {config['test_cache']['config_hash']}")
    torch.manual_seed(0)
    method = METHODS[aux](dict(config["builder_options"]), config["num_classes"], config["feature_dim"],
                          config["num_train_cache_rows"])
    method.load_state_dict(saved["state_dict"])
    scaler = Scaler(saved["scaler"]["mean"], saved["scaler"]["std"])
    table = FeatureTable.from_cache(test, set(method.needs) & {"spatial"}, "cpu")
    logits = predict(method, table, torch.arange(len(test)), 1024, scaler, config["resolved"]["precision"])
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.numpy()
    return classification_metrics(test.label, top5), config


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--test", default=None, help="Test cache to use instead of the one recorded in each run.")
def evaluate_main(runs: tuple[Path, ...], test: str | None) -> None:
    """Recompute the test metrics of one or more runs from model.pt; print them side by side."""
    from . import artifacts

    try:
        columns: dict[str, dict[str, float]] = {}
        notes = []
        for run in runs:
            metrics, config = evaluate_run(run, test)
            name = config["options"]["aux"]
            while name in columns:
                name += "'"
            columns[name] = metrics
            saved = run / "metrics.json" if run.is_dir() else run.parent / "metrics.json"
            check = ""
            if saved.is_file():
                stored = json.loads(saved.read_text())["test"]
                same = all(abs(stored[k] - metrics[k]) < 1e-9 for k in metrics)
                check = "matches metrics.json" if same else "DIFFERS from metrics.json"
            notes.append(f"{name}: {run} (best epoch {config.get('best_epoch')}) {check}".rstrip())
            if config.get("backbone_untrained"):
                notes.append(f"{name}: " + artifacts.weights_note(True, config["train_cache"]["backbone_weights"]))
        click.echo("test split")
        click.echo(artifacts.metrics_table(columns))
        for line in notes:
            click.echo(line)
    except PipelineError as e:
        fail(e)


def train_cli() -> None:
    """Console entry point of train-heads: usage errors are one line too, exit code 2."""
    run_cli(train_main)


def evaluate_cli() -> None:
    """Console entry point of evaluate-heads."""
    run_cli(evaluate_main)


if __name__ == "__main__":
    train_cli()
