"""`extract-features`: stage 1, one split of a dataset (CUB-200-2011 by default, `--dataset`) through the
backbone into an HDF5 cache.

`--shard I/N` extracts one shard of the split into its own file; `--launcher local|slurm|ray
--shards N` runs all N shards on that engine and merges them (`extract.sharding`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from pipeline.datasets import DATASETS, DEFAULT_DATASET
from pipeline.datasets.aircraft import LEVELS as AIRCRAFT_LEVELS
from pipeline.engines import ENGINE_OPTIONS
from pipeline.errors import PipelineError, run_cli
from pipeline.files import OutputNotWritable, lock_output, remove_stale_temporaries
from pipeline.reader import file_attrs, open_hdf5
from pipeline.schema import FEATURE_KINDS, Shard, config_hash, default_cache_path, inputs_per_image, parse_shard_spec

from .backbone_names import RANDOM_WEIGHTS
from .backbones import check_backbone_options  # loads neither TensorFlow nor torch
from .native_logs import VERBOSE_ENV, native_stderr_hidden
from .options import EXTRACT  # no TensorFlow import: --help stays fast
from .sharding.launch import LAUNCHERS, SUBMITIT_CLUSTERS  # the engines themselves load only when asked for
from .sharding.plan import default_shard_path, images_per_block, plan_shard

if TYPE_CHECKING:
    from .config import ViewSpec

# launcher options -> the launchers they apply to
LAUNCH_OPTIONS = {
    "max_parallel": ("local", "slurm"),
    "devices": ("local",),
    **ENGINE_OPTIONS,
}
# what a launcher does not hand on to its shards (it adds --shard I/N, --out and --quiet itself)
NOT_FOR_SHARDS = {"out", "download", "quiet", "progress_lines", "shard", "shard_out", "launcher", "shards", *LAUNCH_OPTIONS}

SPLITS = ("train", "val", "trainval", "test", "all")  # over all datasets; each reader accepts its own


def _parse_views(value: str) -> tuple[str, ...]:
    kinds = [v.strip() for v in value.split(",") if v.strip()]
    bad = [k for k in kinds if k not in FEATURE_KINDS]
    if bad or not kinds:
        raise click.BadParameter(f"expected a comma list of {','.join(FEATURE_KINDS)}, found {value!r}", param_hint="'--views'")
    return tuple(k for k in FEATURE_KINDS if k in kinds)


def _parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        return parse_shard_spec(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


def _parse_devices(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    devices = tuple(d.strip() for d in (value or "").split(",") if d.strip())
    if value is not None and not devices:
        raise click.BadParameter(f"expected a comma list of GPU ids such as 0,1,2,3, found {value!r}", ctx=ctx, param=param)
    return devices


# --shard and the launcher options, in --help order (`sharding_options` applies them as one decorator)
SHARDING_OPTIONS = [
    click.option("--shard", default=None, metavar="I/N", callback=_parse_shard,
                 help="Extract only shard I of N (0-based): a contiguous range of whole batches, into "
                      "<out>.shard-I-of-N.h5. Merge the N files with merge-caches."),
    click.option("--shard-out", default=None, help="File for --shard.  [default: <out>.shard-I-of-N.h5]"),
    click.option("--launcher", type=click.Choice(LAUNCHERS), default=None,
                 help="Run --shards N shards on local processes, a SLURM job array (submitit) or Ray tasks, "
                      "wait, and merge them into --out."),
    click.option("--shards", type=click.IntRange(1), default=None, help="Number of shards for --launcher."),
    click.option("--max-parallel", type=click.IntRange(1), default=None,
                 help="local, slurm: at most this many shards at once.  [default: all (local with --devices: one per device)]"),
    click.option("--devices", default=None, callback=_parse_devices, metavar="IDS",
                 help="local: GPU ids, e.g. 0,1,2,3; each running shard sees one of them (CUDA_VISIBLE_DEVICES)."),
    click.option("--cpus-per-task", type=click.IntRange(1), default=None,
                 help="CPUs per shard (SLURM --cpus-per-task, Ray num_cpus); TensorFlow is kept to as many threads."),
    click.option("--gpus-per-task", type=click.IntRange(0), default=None,
                 help="slurm, ray: GPUs per shard.  [default: slurm none; ray 1 when the cluster has GPUs]"),
    click.option("--slurm-partition", default=None, help="slurm: partition to submit to."),
    click.option("--slurm-time", type=click.IntRange(1), default=120, show_default=True, help="slurm: time limit per shard, minutes."),
    click.option("--slurm-logs", default=None, help="slurm: submitit's folder for job scripts and logs (shared storage).  "
                                                    "[default: <out>.submitit/ beside --out]"),
    click.option("--submitit-cluster", type=click.Choice(SUBMITIT_CLUSTERS), default="slurm", hidden=True,
                 help="submitit executor for --launcher slurm; local runs the array as local processes (tests)."),
    click.option("--ray-address", default=None, help="ray: address of the Ray cluster to join (e.g. ray://head:10001 or "
                                                     "auto).  [default: RAY_ADDRESS, else a new local Ray instance]"),
]


def sharding_options(command):
    """Add SHARDING_OPTIONS to `command`, in their order."""
    for option in reversed(SHARDING_OPTIONS):
        command = option(command)
    return command


# what to read and where to write
INPUT_OPTIONS = [
    click.option("--dataset", type=click.Choice(list(DATASETS)), default=DEFAULT_DATASET, show_default=True,
                  help="Which dataset's reader (docs/datasets.md); folder is ROOT/<split>/<class>/<image> or --folder-csv."),
    click.option("--data-root", default=None,
                  help="The dataset's directory (CUB: the one holding images.txt and images/).  "
                       "[default: data/<the dataset's directory>, e.g. data/CUB_200_2011]"),
    click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True,
                  help="Official split to extract: train, test or all; aircraft, flowers102 and folder also val and "
                       "trainval."),
    click.option("--aircraft-level", type=click.Choice(AIRCRAFT_LEVELS), default=None,
                  help="--dataset aircraft: label by variant (100), family (70) or manufacturer (30).  [default: variant]"),
    click.option("--folder-csv", default=None,
                  help="--dataset folder: a CSV of path,label,split (relative to --data-root unless absolute) "
                       "instead of the ROOT/<split>/<class>/ tree."),
    click.option("--out", default=None,
                  help="HDF5 cache to write.  [default: data/features/<split>.h5; other datasets than cub: "
                       "data/features/<dataset>/<split>.h5]"),
]

# the backbone and the views it embeds
VIEW_OPTIONS = [
    EXTRACT["backbone"].click_option(),
    EXTRACT["weights"].click_option(),
    EXTRACT["image_size"].click_option(),
    click.option("--views", "views", default="original,jigsaw,rcm", show_default=True,
                  help="Comma list of original,jigsaw,rcm,patches (patches: PIRL's nine patch crops per view, each "
                       "embedded at its own size, for train-heads --pirl-form paper)."),
    *(EXTRACT[name].click_option() for name in ("num_views", "jigsaw_grid", "rcm_grid", "rcm_k", "patch_grid",
                                                "patch_size", "patch_jitter")),
    click.option("--spatial", is_flag=True, help="Also store the last spatial feature map (float16) for the original and RCM views."),
]

# how the run goes
RUN_OPTIONS = [
    *(EXTRACT[name].click_option() for name in ("batch_size", "precision", "device", "seed", "model_cache")),
    click.option("--download", is_flag=True,
                  help="Fetch and verify the dataset into --data-root first (no-op when present); for cars and nabirds, "
                       "which cannot be downloaded, says which files to place where."),
    click.option("--overwrite", is_flag=True, help="Replace an existing cache written with a different configuration."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
    click.option("--progress-lines", is_flag=True,
                 help="Print 'progress rows DONE/TOTAL' on stdout at most once a second and at the end (for a caller "
                      "such as `study`, whose live ETA follows it); with --launcher local, the shards' rows summed."),
    click.option("--verbose", is_flag=True, envvar=VERBOSE_ENV,
                  help=f"Show TensorFlow's own start-up and C++ log lines (hidden by default). Also: {VERBOSE_ENV}=1."),
]


def with_options(*groups: list) -> Callable:
    """Apply option groups to a command, in their order."""
    def decorate(command: Callable) -> Callable:
        for option in reversed([o for group in groups for o in group]):
            command = option(command)
        return command
    return decorate


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@with_options(INPUT_OPTIONS, VIEW_OPTIONS, RUN_OPTIONS)
@sharding_options
def extract_features(**params: Any) -> None:
    """Run the backbone once over a split and its shuffled views; write features to an HDF5 cache."""
    ctx = click.get_current_context()
    kinds = _validate_options(ctx)
    out_path, target = _lock_output(ctx)
    data, block, check = _load_split(ctx, kinds)
    if params["launcher"] is not None:
        launch_options = {k: v for k, v in params.items() if k in LAUNCH_OPTIONS}
        _launch(ctx, out_path, data, block, params["launcher"], params["shards"], params["overwrite"],
                params["verbose"], launch_options)
    else:
        _run_one(ctx, data, out_path, target, block, kinds, check)
    if params["shard"] is None:  # a shard's own process leaves its launcher's output as it was
        for line in _input_lines(data, check):
            print(line, flush=True)


def _input_lines(data, check) -> list[str]:
    """What the reader skipped (by reason, with counts) and what the input check found: printed after the summary."""
    from pipeline.datasets.folder import skipped_text

    lines = [f"{data.root}: {skipped_text(data.skipped, data.skipped_examples)}"] if data.skipped else []
    return lines + ([f"{data.root}: {check.line()}"] if check is not None else [])


def view_spec(p: dict) -> "ViewSpec":
    """The views this command's options ask for."""
    from .config import ViewSpec

    return ViewSpec(_parse_views(p["views"]), p["num_views"], p["jigsaw_grid"], p["rcm_grid"], p["rcm_k"],
                    p["patch_grid"], p["patch_size"], p["patch_jitter"])


def _validate_options(ctx: click.Context) -> tuple[str, ...]:
    """Check the options against each other (before anything loads); the view kinds asked for."""
    p = ctx.params
    kinds = _parse_views(p["views"])
    if "rcm" in kinds and not 1 <= p["rcm_k"] < p["rcm_grid"]:
        raise click.BadParameter(f"expected 1 <= k < --rcm-grid ({p['rcm_grid']}), found {p['rcm_k']}", param_hint="'--rcm-k'")
    for name, grid in (("--jigsaw-grid", p["jigsaw_grid"]), ("--rcm-grid", p["rcm_grid"])):
        if grid > p["image_size"]:
            raise click.BadParameter(f"grid {grid} is larger than --image-size {p['image_size']}", param_hint=f"'{name}'")
    if "patches" in kinds:
        try:
            view_spec(p).patch_geometry(p["image_size"])
        except ValueError as e:
            option, _, reason = str(e).partition(": ")
            raise click.BadParameter(reason, param_hint=f"'{option}'") from None
    _check_sharding_options(ctx, p["shard"], p["shard_out"], p["launcher"], p["shards"])
    _check_dataset_options(ctx)
    check_backbone_options(p)
    return kinds


def _check_dataset_options(ctx: click.Context) -> None:
    """Dataset options belong to their dataset; --data-root defaults to data/<the dataset's directory>."""
    p = ctx.params
    for option, name, owner in (("--aircraft-level", "aircraft_level", "aircraft"), ("--folder-csv", "folder_csv", "folder")):
        if p[name] is not None and p["dataset"] != owner:
            raise click.UsageError(f"{option} is for --dataset {owner} (this is --dataset {p['dataset']})")
    reader = DATASETS[p["dataset"]]
    if p["split"] not in reader.splits:
        raise click.BadParameter(f"--dataset {reader.name} has the splits {', '.join(reader.splits)}, found {p['split']!r}",
                                 param_hint="'--split'")
    if p["data_root"] is None:
        p["data_root"] = str(Path("data") / reader.dirname)


def _dataset_options(p: dict) -> dict:
    return {"level": p["aircraft_level"], "csv": p["folder_csv"]}


def _load_split(ctx: click.Context, kinds: tuple[str, ...]):
    """(the split's rows, images per forward pass, the input check: None in a shard's own process, whose launcher or
    user ran it on the whole split); a shard count
    the split cannot hold, and a file in two splits (`pipeline.datasets.integrity`), are refused here, before the
    backbone loads."""
    from pipeline.datasets import fetch_dataset, load_dataset
    from pipeline.datasets.integrity import check_dataset

    p = ctx.params
    shard, shards = p["shard"], p["shards"]
    if p["download"]:
        fetch_dataset(p["dataset"], p["data_root"], progress=not p["quiet"])
    data = load_dataset(p["dataset"], p["data_root"], p["split"], **_dataset_options(p))
    block = images_per_block(p["batch_size"], inputs_per_image(kinds, p["num_views"], p["patch_grid"]))
    if shard is not None or p["launcher"] is not None:
        try:  # too many shards for the split's blocks: say so before TensorFlow loads
            plan_shard(shard[0] if shard else 0, shard[1] if shard else shards, len(data), block)
        except PipelineError as e:
            raise PipelineError(f"{'--shard ' + '/'.join(map(str, shard)) if shard else '--shards ' + str(shards)}: {e}") from None
    check = None if shard is not None else check_dataset(p["dataset"], p["data_root"], **_dataset_options(p))
    return data, block, check


def _lock_output(ctx: click.Context) -> tuple[Path, Path]:
    """(the cache, the file this command writes: the cache or its shard), the latter locked for the command."""
    p = ctx.params
    shard, shard_out = p["shard"], p["shard_out"]
    out_path = Path(p["out"]) if p["out"] else default_cache_path(p["split"])
    if not p["out"] and p["dataset"] != DEFAULT_DATASET:
        out_path = out_path.parent / p["dataset"] / out_path.name
    if out_path.is_dir():
        raise PipelineError(f"--out {out_path}: is a directory; give a file path such as {out_path / (p['split'] + '.h5')}")
    target, option = out_path, "--out"
    if shard is not None:
        target = Path(shard_out) if shard_out else default_shard_path(out_path, *shard)
        option = "--shard-out" if shard_out else "--out"
        if target.is_dir():
            raise PipelineError(f"--shard-out {target}: is a directory; give a file path")
    try:  # one writer per cache, held to the end; also proves the directory writable before TensorFlow loads
        ctx.with_resource(lock_output(target, what="sharded extraction" if p["launcher"] else "extraction"))
    except OutputNotWritable as e:
        if p["launcher"] or not _is_complete(target):  # a complete cache may still be all this run needs
            raise PipelineError(f"{option} {e}") from None
    except PipelineError as e:
        raise PipelineError(f"{option} {e}") from None
    if shard is None:
        remove_stale_temporaries(out_path.with_suffix(".views.png"))  # a figure a killed run was writing
    return out_path, target


def _is_complete(path: Path) -> bool:
    """Whether `path` is a complete cache (of any configuration: the writer compares that)."""
    try:
        with open_hdf5(path) as f:
            return bool(f.attrs.get("complete"))
    except PipelineError:
        return False


def _run_one(ctx: click.Context, data, out_path: Path, target: Path, block: int, kinds: tuple[str, ...],
             check=None) -> None:
    """Extract the split (or one --shard) in this process, then report it."""
    p = ctx.params
    # TensorFlow (or torch) only from here on: option and dataset errors above come without its start-up cost.
    ctx.with_resource(native_stderr_hidden(hide=not p["verbose"]))
    from .backbones import load_for_options
    from .run import extract_split

    spec = view_spec(p)
    net = load_for_options(p)  # TF-Hub or torch; each resolves its precision (and a torch one its device)
    used = net.precision
    if p["spatial"] and net.spatial_shape is None:
        raise PipelineError(f"--backbone {p['backbone']}: cannot give a spatial map for --spatial")
    try:
        result = extract_split(data, net, target, spec, p["image_size"], p["seed"], p["spatial"], p["batch_size"],
                               overwrite=p["overwrite"], progress=not p["quiet"], shard=p["shard"],
                               input_check=check.record() if check is not None else None,
                               progress_lines=p["progress_lines"])
    except KeyboardInterrupt:
        raise PipelineError(f"{target}: interrupted; rows written so far are kept, rerun the same command to resume") from None
    if p["shard"] is not None:
        _report_shard(p, data, target, block, net, used, result)
    else:
        _report_split(p, data, out_path, spec, kinds, net, used, result)


def _weights(net) -> str:
    return "random, UNTRAINED (accuracy from these features means nothing about CUB)" if net.untrained else net.weights


def _report_shard(p: dict, data, target: Path, block: int, net, used: str, result) -> None:
    part = plan_shard(*p["shard"], len(data), block)
    backbone, weights = p["backbone"], _weights(net)
    if result.status == "complete":
        print(f"{target} (shard {part.spec}): already complete with this configuration; nothing to do "
              f"({part.rows_text()}, backbone {backbone}, precision {used}, weights {weights})")
        return
    rate = result.rows / result.seconds if result.seconds else 0.0
    print(f"wrote {target} (shard {part.spec}): {part.rows_text()}, {result.rows} rows computed"
          f"{' (resumed)' if result.status == 'resumed' else ''}, {result.seconds:.1f} s, {rate:.1f} images/s, "
          f"{target.stat().st_size / 2**20:.1f} MiB, backbone {backbone}, precision {used}{_asked(p['precision'], used)}, "
          f"weights {weights}")


def _report_split(p: dict, data, out_path: Path, spec, kinds: tuple[str, ...], net, used: str, result) -> None:
    from .run import write_views_figure

    backbone, weights, image_size = p["backbone"], _weights(net), p["image_size"]
    if result.status == "complete":
        figure = ""
        if not out_path.with_suffix(".views.png").is_file() and os.access(out_path.parent, os.W_OK):
            # e.g. killed after `complete` was set (a read-only directory keeps what it has)
            figure = f"; wrote the missing {write_views_figure(data, out_path, spec, image_size)}"
        print(f"{out_path}: already complete with this configuration; nothing to do "
              f"({len(data)} rows, backbone {backbone}, precision {used}, weights {weights}){figure}")
        return
    views_png = write_views_figure(data, out_path, spec, image_size)
    size = out_path.stat().st_size / 2**20
    rate = result.rows / result.seconds if result.seconds else 0.0
    print(f"wrote {out_path}: {result.rows} rows ({'resumed, ' if result.status == 'resumed' else ''}{len(data)} in split), "
          f"views {_describe_views(kinds, p['num_views'])}, {result.seconds:.1f} s, {rate:.1f} images/s "
          f"({rate * spec.per_image:.1f} backbone inputs/s), {size:.1f} MiB, backbone {backbone} "
          f"[{net.endpoint}], precision {used}{_asked(p['precision'], used)}, weights {weights}; {views_png}")


def _asked(requested: str, used: str) -> str:
    return f" (--precision {requested})" if requested != used else ""


def _check_sharding_options(ctx: click.Context, shard: tuple[int, int] | None, shard_out: str | None,
                            launcher: str | None, shards: int | None) -> None:
    if shard is not None and launcher is not None:
        raise click.UsageError("--shard and --launcher: give one (a launcher runs every --shard I/N itself)")
    if launcher is not None and shards is None:
        raise click.UsageError(f"--launcher {launcher} needs --shards N")
    if shards is not None and launcher is None:
        raise click.UsageError("--shards N needs --launcher local, slurm or ray (or run each --shard I/N yourself)")
    if shard_out is not None and shard is None:
        raise click.UsageError("--shard-out is for --shard I/N")
    for name, launchers in LAUNCH_OPTIONS.items():
        if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None) and launcher not in launchers:
            option = "--" + name.replace("_", "-")
            raise click.UsageError(f"{option} is for --launcher {' or '.join(launchers)}")


def _shard_value(name: str, value):
    """An option's value as a shard gets it: paths made absolute (a shard may run elsewhere)."""
    if value is not None and (name in ("data_root", "model_cache") or (name == "backbone" and Path(value).exists())
                              or (name == "weights" and value != RANDOM_WEIGHTS and Path(value).exists())):
        return str(Path(value).resolve())
    return value


def _shard_argv(ctx: click.Context) -> list[str]:
    """This command's extraction options, as each shard must get them (paths made absolute: a shard may
    run in another directory or on another machine)."""
    argv: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in NOT_FOR_SHARDS:
            continue
        value = _shard_value(param.name, ctx.params[param.name])
        if param.is_flag:
            argv += [param.opts[0]] if value else []
        elif value is not None:
            argv += [param.opts[0], str(value)]
    return argv + ["--quiet"]


def _launch(ctx: click.Context, out_path: Path, data, block: int, launcher: str, count: int, overwrite: bool,
            verbose: bool, options: dict) -> None:
    """Run the N shards on `launcher`, report each as it ends, and merge them into out_path once all succeeded."""
    from .sharding import launch
    from .sharding.merge import merge_shards, summary
    from .sharding.plan import plan_shards
    from .sharding.progress import ShardProgress

    plans = plan_shards(count, len(data), block)
    out_abs = out_path.resolve()
    argv = _shard_argv(ctx)
    env = launch.thread_env(options["cpus_per_task"])
    print(f"{out_path}: {len(data)} rows in {count} shards of whole blocks of {block} images, on {launcher}: "
          + ", ".join(f"{p.spec} rows {p.row_start}..{p.row_stop - 1}" for p in plans), flush=True)
    finished = {} if overwrite else _finished_shards(ctx, data, plans, out_path)
    outcomes = [launch.ShardOutcome(i, count, 0, line, noun="shard") for i, line in sorted(finished.items())]
    for outcome in outcomes:
        print(outcome.line(), flush=True)
    # a local launcher relays its shards' rows done as one progress line (a cluster's shards print theirs to logs)
    relay = ctx.params["progress_lines"] and launcher == "local"
    progress = ShardProgress({p.index: p.num_rows for p in plans if p.index not in finished}) if relay else None
    jobs = [launch.ShardJob(p.index, count, (*argv, *(["--progress-lines"] if relay else []), "--shard", p.spec,
                                             "--out", str(out_abs)), env)
            for p in plans if p.index not in finished]

    def report(line: str) -> None:
        print(line, flush=True)

    try:
        if jobs:  # finished shards start no process (and no TensorFlow)
            outcomes += _run_launcher(launch, launcher, jobs, report, out_abs, options,
                                      progress.on_line if progress is not None else None)
    except KeyboardInterrupt:
        raise PipelineError(f"{out_path}: interrupted; the shards started were stopped and their rows written so far "
                            "are kept: rerun the same command to resume") from None
    failed = sorted((o for o in outcomes if not o.ok), key=lambda o: o.index)
    if failed:
        first = failed[0]
        raise PipelineError(
            f"{len(failed)} of {count} shards failed (first: shard {first.index}/{count}: "
            f"{first.error.removeprefix('error: ')}); the other shards' rows are kept: fix the cause and "
            "rerun the same command, which extracts only what is missing"
        )
    result = merge_shards(out_path, [default_shard_path(out_path, p.index, count) for p in plans], overwrite=overwrite)
    print(summary(result), flush=True)
    views_png = out_path.with_suffix(".views.png")
    if not views_png.is_file():
        ctx.with_resource(native_stderr_hidden(hide=not verbose))
        from .run import write_views_figure

        params = ctx.params
        spec = view_spec(params)
        print(f"wrote {write_views_figure(data, out_path, spec, params['image_size'])}")


def _finished_shards(ctx: click.Context, data, plans: list, out_path: Path) -> dict[int, str]:
    """The shards whose file already is complete with this command's configuration (index -> the line a
    shard prints then), told without TensorFlow. With --precision auto, the precision the shard was
    extracted in is kept (auto picks it per machine, and each shard records what it used)."""
    from .backbones import config_record
    from .config import extraction_config

    p = ctx.params
    spec = view_spec(p)
    handle = _shard_value("backbone", p["backbone"])  # as the shard's own command gets it
    finished, record = {}, None
    for plan in plans:
        path = default_shard_path(out_path, plan.index, plan.count)
        attrs = _complete_attrs(path)
        if attrs is None or Shard.from_attrs(attrs) != plan:
            continue
        precision = json.loads(attrs["config"]).get("precision") if p["precision"] == "auto" else p["precision"]
        if record is None:  # the backbone's preprocessing and model record (a torch model is built once, on the CPU)
            record = config_record({**p, "weights": _shard_value("weights", p["weights"])})
        expected = extraction_config(data, spec, handle, p["image_size"], p["seed"], p["spatial"], precision, *record)
        if config_hash(expected) == attrs["config_hash"]:
            finished[plan.index] = (f"{path} (shard {plan.spec}): already complete with this configuration; nothing "
                                    f"to do ({plan.rows_text()}, backbone {p['backbone']}, precision {precision})")
    return finished


def _complete_attrs(path: Path) -> dict | None:
    """A complete cache's root attributes, or None (no file, not a cache, not complete)."""
    try:
        with open_hdf5(path) as f:
            attrs = file_attrs(f)
    except PipelineError:
        return None
    return attrs if attrs.get("complete") and "config" in attrs and "config_hash" in attrs else None


def _run_launcher(launch, launcher: str, jobs: list, report, out_abs: Path, options: dict,
                  on_line: Callable[[int, str], None] | None = None) -> list:
    """Run `jobs` on `launcher` with its options; the shards' outcomes (`on_line`: a local shard's output lines)."""
    if launcher == "local":
        return launch.run_local(jobs, report, options["max_parallel"], options["devices"], on_line)
    if launcher == "slurm":
        logs = Path(options["slurm_logs"]) if options["slurm_logs"] else out_abs.with_name(out_abs.stem + ".submitit")
        return launch.run_submitit(jobs, report, logs.resolve(), options["submitit_cluster"],
                                   options["slurm_partition"], options["slurm_time"], options["gpus_per_task"],
                                   options["cpus_per_task"], options["max_parallel"])
    return launch.run_ray(jobs, report, options["ray_address"], options["gpus_per_task"], options["cpus_per_task"])


def _describe_views(kinds: tuple[str, ...], num_views: int) -> str:
    """'original + jigsaw x 4 + rcm x 4'."""
    return " + ".join(k if k == "original" else f"{k} x {num_views}" for k in kinds)


def main() -> None:
    run_cli(extract_features)
