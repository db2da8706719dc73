"""`train-heads`, `sweep-heads` and `evaluate-heads`: stage 2, PyTorch heads on cached features (never TensorFlow).

The commands parse options into typed values (heads.spec.RunSpec) and print; every run trains through
`heads.training.experiment.run_specs`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from pipeline.errors import PipelineError, fail, run_cli

from heads.search.grid import MAX_SEED
from heads.options import AUX_CHOICES, AUX_HELP, applicable, common_options, experiment_options, launch_options, search_options, selection_options

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}


def show_progress(quiet: bool) -> bool:
    """Progress bars only on a terminal: a redirected log gets no carriage returns or escape codes."""
    return not quiet and sys.stderr.isatty()


def train_heads(options: dict[str, Any]) -> Path:
    """train-heads: one experiment with the given options; prints the selected epoch and the test table."""
    from heads.training import artifacts
    from heads.methods.registry import declaration
    from heads.options import MethodOptions
    from heads.spec import RunSpec
    from heads.training.experiment import Caches, device_of, run_experiment
    from heads.training.rows import split_rows
    from heads.training.step import resolve_precision

    aux = options["aux"]
    device = device_of(options["device"])
    options = {**options, "precision": resolve_precision(options["precision"], device)}  # once: the run gets it concrete
    artifacts.check_writable(Path(options["out"]), "--out")
    caches = Caches.load(options["train"], options["test"], [aux], device, log=lambda m: click.echo(m, err=True),
                         maps_in_memory=options.get("maps_in_memory", "auto"))
    spec = RunSpec(aux, options["seed"], MethodOptions.of(options, declaration(aux).own_options),
                   options["standardize"], "train-heads")
    train = caches.train
    rows = split_rows(train, spec)
    labels = ("every training row labelled" if rows["k"] is None else
              f"{len(rows['labelled'])} labelled (--labels-per-class {rows['k']}) + "
              f"{len(rows['train']) - len(rows['labelled'])} unlabelled")
    click.echo(f"train-heads --aux {aux}: {len(rows['train'])} training rows ({labels}) + {len(rows['val'])} "
               f"validation rows ({rows['validation']}) of {train.path}, {len(caches.test)} test "
               f"rows of {caches.test.path}; D={train.feature_dim}, C={train.num_classes}, {device}", err=True)
    final = artifacts.new_run_name(options["out"], aux)
    result = run_experiment(caches, spec, final, score_test=True, progress=show_progress(options["quiet"]),
                            data_root=options["data_root"], log=lambda m: click.echo(m, err=True))
    if not (result.run_dir / "predictions.png").exists():
        click.echo(f"predictions.png skipped: test images not found under {options['data_root']}/images "
                   "(set --data-root)", err=True)
    chosen = "by validation top-1" if result.val else "(the last: no validation rows)"
    click.echo(f"\n--aux {aux}: best epoch {result.best_epoch}/{result.epochs} {chosen}; "
               f"test split evaluated once with those weights")
    click.echo(artifacts.weights_note(result.untrained, result.weights))
    click.echo(artifacts.metrics_table({"val": result.val, "test": result.test}))
    click.echo(f"run directory: {result.run_dir}")
    return result.run_dir


@click.command(context_settings=CONTEXT)
@common_options(sweep=False)
@click.option("--aux", type=click.Choice(AUX_CHOICES), default="pirl", help=AUX_HELP)
@click.option("--seed", default=0, type=click.IntRange(0, MAX_SEED), show_default=True,
              help="Seeds the split, initial weights, memory bank and batch order.")
@experiment_options(sweep=False)
def train_main(**options: Any) -> None:
    """Train heads on cached features, select the epoch by validation, evaluate once on test."""
    try:
        train_heads(options)
    except PipelineError as e:
        fail(e)
    except OSError as e:  # disk full, permissions changed mid-run: one line, the run stays .partial
        fail(f"{e.filename or '--out'}: {e.strerror or e}")


@click.command(context_settings=CONTEXT)
@common_options(sweep=True)
@click.option("--aux", "aux", multiple=True, metavar="A1,A2,...", help=f"Comma list of {', '.join(AUX_CHOICES)}. "
              + AUX_HELP + "  [default: none,pirl]")
@click.option("--seeds", default="0,1,2", help="Seeds: a comma list (0,1,2) or a range (0-4).")
@click.option("--name", default=None, help="Sweep directory name under --out.  [default: UTC timestamp]")
@click.option("--keep-weights", type=click.Choice(["selected", "all"]), default="selected",
              help="Keep model.pt of the selected runs only (the others are deleted after selection), or of all.")
@experiment_options(sweep=True)
@launch_options()
@search_options()
@selection_options()
def sweep_main(**options: Any) -> None:
    """Train a grid of settings x seeds, select each aux choice's setting on validation, score the test split once."""
    import time

    from pipeline.files import lock_output

    from heads.search.sweep import run_sweep_command
    from heads.search.settings import LaunchSettings
    from heads.search.workers import executor_for

    try:
        LaunchSettings.of(options)  # a launcher option without its launcher: one line, before any cache is read
        options["precision"] = resolved_precisions(options["precision"], options["device"])
        options["name"] = options["name"] or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        with lock_output(Path(options["out"]) / options["name"], what="sweep-heads"):  # one launch per sweep
            run_sweep_command(options, progress=show_progress(options["quiet"]), echo=click.echo, launch=executor_for)
    except click.ClickException as e:  # a bad value inside a comma list: one line, like any usage error
        fail(e.format_message())
    except PipelineError as e:
        fail(e)
    except OSError as e:
        fail(f"{e.filename or '--out'}: {e.strerror or e}")


def resolved_precisions(texts: tuple[str, ...], device: str) -> tuple[str, ...]:
    """sweep-heads' --precision occurrences ('[AUX=]V1,V2,...'; none: the default) with each value resolved once for
    --device (heads.training.step.resolve_precision), so the grid and every run and bank get a concrete one."""
    from heads.options import OPTIONS_BY_NAME
    from heads.training.experiment import device_of
    from heads.training.step import resolve_precision

    where = device_of(device)
    out = []
    for text in texts or (OPTIONS_BY_NAME["precision"].default,):
        aux, sep, values = text.rpartition("=")
        out.append(aux + sep + ",".join(resolve_precision(v.strip(), where) for v in values.split(",") if v.strip()))
    return tuple(out)


def evaluate_run(run: Path, test_path: str | None) -> tuple[dict[str, float], dict[str, Any]]:
    """Rebuild a run's model from model.pt and recompute its test metrics."""
    import torch

    from heads.training.pairing import read_role_cache as read_cache

    from heads.training.data import FeatureTable, check_finite
    from heads.training.experiment import load_trained, top5_of
    from heads.training.metrics import classification_metrics
    from heads.training.step import predict

    method, scaler, config = load_trained(run)
    test = read_cache(test_path or config["test_cache"]["path"], kinds=["original"])
    check_finite(test)
    if test.attrs.get("config_hash") != config["test_cache"]["config_hash"]:
        raise PipelineError(f"{test.path}: config_hash {test.attrs.get('config_hash')}, but {run} was "
                            f"tested on {config['test_cache']['config_hash']}")
    table = FeatureTable.from_cache(test, set(method.needs) & {"spatial"}, "cpu")  # checks the maps it reads
    logits = predict(method, table, torch.arange(len(test)), 1024, scaler, config["resolved"]["precision"])
    return classification_metrics(test.label, top5_of(logits)), config


def evaluate_heads(runs: tuple[Path, ...], test: str | None) -> None:
    """evaluate-heads: recompute each run's test metrics from model.pt, print them side by side."""
    from heads.training import artifacts

    columns: dict[str, dict[str, float]] = {}
    notes = []
    untrained: set[str] = set()
    for run in runs:
        if not run.exists():
            raise PipelineError(f"{run}: no such run directory")
        metrics, config = evaluate_run(run, test)
        name = config["options"]["aux"]
        while name in columns:
            name += "'"
        columns[name] = metrics
        saved = run / "metrics.json" if run.is_dir() else run.parent / "metrics.json"
        check = ""
        stored = json.loads(saved.read_text()).get("test") if saved.is_file() else None
        if stored:
            same = all(abs(stored[k] - metrics[k]) < 1e-9 for k in metrics)
            check = "matches metrics.json" if same else "DIFFERS from metrics.json"
        elif saved.is_file():
            check = "(metrics.json holds no test metrics: a sweep run that was not selected)"
        notes.append(f"{name}: {run} (best epoch {config.get('best_epoch')}) {check}".rstrip())
        if config.get("backbone_untrained"):
            untrained.add(str(config["train_cache"]["backbone_weights"]))
    click.echo("test split")
    click.echo(artifacts.metrics_table(columns))
    for line in notes:
        click.echo(line)
    for weights in sorted(untrained):
        click.echo(artifacts.weights_note(True, weights))


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--test", default=None, help="Test cache to use instead of the one recorded in each run.")
@click.pass_context
def evaluate_main(ctx: click.Context, runs: tuple[Path, ...], test: str | None) -> None:
    """Recompute the test metrics of one or more runs from model.pt; print them side by side."""
    if not runs:
        click.echo(ctx.get_usage(), err=True)
        fail("evaluate-heads: expected one or more run directories (or model.pt files), found none")
    try:
        evaluate_heads(runs, test)
    except PipelineError as e:
        fail(e)


def train_cli() -> None:
    """Console entry point of train-heads: usage errors are one line too, exit code 2."""
    run_cli(train_main)


def sweep_cli() -> None:
    """Console entry point of sweep-heads."""
    run_cli(sweep_main)


def evaluate_cli() -> None:
    """Console entry point of evaluate-heads."""
    run_cli(evaluate_main)


if __name__ == "__main__":
    train_cli()
