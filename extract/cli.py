"""`extract-features`: stage 1, one split of CUB-200-2011 through the backbone into an HDF5 cache."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cache import FEATURE_KINDS, default_cache_path
from pipeline.cub import SPLITS
from pipeline.errors import PipelineError, run_cli
from pipeline.atomic import remove_stale_temporaries
from pipeline.locks import lock_output

from .backbone_names import DEFAULT_HANDLE, RANDOM_RESNET
from .native_logs import VERBOSE_ENV, native_stderr_hidden
from .precision import DEFAULT_PRECISION, PRECISIONS  # no TensorFlow import: --help stays fast


def _parse_views(value: str) -> tuple[str, ...]:
    kinds = [v.strip() for v in value.split(",") if v.strip()]
    bad = [k for k in kinds if k not in FEATURE_KINDS]
    if bad or not kinds:
        raise click.BadParameter(f"expected a comma list of {','.join(FEATURE_KINDS)}, found {value!r}", param_hint="'--views'")
    return tuple(k for k in FEATURE_KINDS if k in kinds)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-root", default="data/CUB_200_2011", show_default=True, help="Directory holding images.txt and images/.")
@click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True, help="Official split to extract.")
@click.option("--out", default=None, help="HDF5 cache to write.  [default: data/features/<split>.h5]")
@click.option("--backbone", default=DEFAULT_HANDLE, show_default=True,
              help=f"TF-Hub handle (URL), local SavedModel directory, or '{RANDOM_RESNET}' (random weights, offline).")
@click.option("--image-size", default=224, show_default=True, type=click.IntRange(32), help="Model input size S (images are resized to S x S).")
@click.option("--views", "views", default="original,jigsaw,rcm", show_default=True, help="Comma list of original,jigsaw,rcm.")
@click.option("--num-views", default=4, show_default=True, type=click.IntRange(1), help="Shuffled views V per image and kind.")
@click.option("--jigsaw-grid", default=3, show_default=True, type=click.IntRange(2), help="Jigsaw grid G (G x G tiles).")
@click.option("--rcm-grid", default=7, show_default=True, type=click.IntRange(2), help="RCM grid R (R x R regions).")
@click.option("--rcm-k", default=2.0, show_default=True, type=float, help="RCM neighbourhood range k (1 <= k < R).")
@click.option("--spatial", is_flag=True, help="Also store the last spatial feature map (float16) for the original and RCM views.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1),
              help="Backbone inputs per forward pass (images x views per image, rounded down to whole images).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=DEFAULT_PRECISION, show_default=True,
              help="Backbone arithmetic: fp32; bf16 (oneDNN bfloat16 mixed precision, CPUs with AMX or AVX512_BF16); "
                   "fp16 (mixed float16, GPU); auto (fp16 on a GPU, else bf16 where the CPU has it, else fp32). "
                   "Features are stored float32; the precision used is part of the cache's config.")
@click.option("--seed", default=0, show_default=True, help="Seed of the view permutations (and of random-resnet50v2's weights).")
@click.option("--model-cache", default="data/models", show_default=True, help="Where random-resnet50v2 is saved once.")
@click.option("--download", is_flag=True, help="Fetch and verify CUB-200-2011 into --data-root first (no-op when present).")
@click.option("--overwrite", is_flag=True, help="Replace an existing cache written with a different configuration.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--verbose", is_flag=True, envvar=VERBOSE_ENV,
              help=f"Show TensorFlow's own start-up and C++ log lines (hidden by default). Also: {VERBOSE_ENV}=1.")
def extract_features(data_root: str, split: str, out: str | None, backbone: str, image_size: int, views: str,
                     num_views: int, jigsaw_grid: int, rcm_grid: int, rcm_k: float, spatial: bool, batch_size: int,
                     precision: str, seed: int, model_cache: str, download: bool, overwrite: bool, quiet: bool, verbose: bool) -> None:
    """Run the backbone once over a split and its shuffled views; write features to an HDF5 cache."""
    kinds = _parse_views(views)
    if "rcm" in kinds and not 1 <= rcm_k < rcm_grid:
        raise click.BadParameter(f"expected 1 <= k < --rcm-grid ({rcm_grid}), found {rcm_k}", param_hint="'--rcm-k'")
    for name, grid in (("--jigsaw-grid", jigsaw_grid), ("--rcm-grid", rcm_grid)):
        if grid > image_size:
            raise click.BadParameter(f"grid {grid} is larger than --image-size {image_size}", param_hint=f"'{name}'")
    out_path = Path(out) if out else default_cache_path(split)
    if out_path.is_dir():
        raise PipelineError(f"--out {out_path}: is a directory; give a file path such as {out_path / (split + '.h5')}")
    ctx = click.get_current_context()
    try:  # one writer per cache, held to the end; also proves the directory writable before TensorFlow loads
        ctx.with_resource(lock_output(out_path, what="extraction"))
    except PipelineError as e:
        raise PipelineError(f"--out {e}") from None
    remove_stale_temporaries(out_path.with_suffix(".views.png"))  # a figure a killed run was writing

    from pipeline.cub import load_cub
    from pipeline.download import download_cub

    if download:
        download_cub(data_root, progress=not quiet)
    data = load_cub(data_root, split)

    # TensorFlow only from here on: option and dataset errors above come without its start-up cost.
    ctx.with_resource(native_stderr_hidden(hide=not verbose))
    from .backbone import load_backbone
    from .inputs import ViewSpec
    from .precision import prepare_devices, resolve_precision
    from .run import extract_split, write_views_figure

    used = resolve_precision(precision, prepare_devices())
    spec = ViewSpec(kinds, num_views, jigsaw_grid, rcm_grid, rcm_k)
    net = load_backbone(backbone, image_size, spatial=spatial, seed=seed, model_cache=model_cache, precision=used)
    if spatial and net.spatial_shape is None:
        raise PipelineError(f"--backbone {backbone}: cannot give a spatial map for --spatial")
    try:
        result = extract_split(data, net, out_path, spec, image_size, seed, spatial, batch_size,
                               overwrite=overwrite, progress=not quiet)
    except KeyboardInterrupt:
        raise PipelineError(f"{out_path}: interrupted; rows written so far are kept, rerun the same command to resume") from None
    weights = "random, UNTRAINED (accuracy from these features means nothing about CUB)" if net.untrained else net.weights
    if result.status == "complete":
        figure = ""
        if not out_path.with_suffix(".views.png").is_file():  # e.g. killed after `complete` was set
            figure = f"; wrote the missing {write_views_figure(data, out_path, spec, image_size)}"
        print(f"{out_path}: already complete with this configuration; nothing to do "
              f"({len(data)} rows, backbone {backbone}, precision {used}, weights {weights}){figure}")
        return
    views_png = write_views_figure(data, out_path, spec, image_size)
    size = out_path.stat().st_size / 2**20
    rate = result.rows / result.seconds if result.seconds else 0.0
    print(f"wrote {out_path}: {result.rows} rows ({'resumed, ' if result.status == 'resumed' else ''}{len(data)} in split), "
          f"views {_describe_views(kinds, num_views)}, {result.seconds:.1f} s, {rate:.1f} images/s "
          f"({rate * spec.per_image:.1f} backbone inputs/s), {size:.1f} MiB, backbone {backbone} "
          f"[{net.endpoint}], precision {used}{_asked(precision, used)}, weights {weights}; {views_png}")


def _asked(requested: str, used: str) -> str:
    return f" (--precision {requested})" if requested != used else ""


def _describe_views(kinds: tuple[str, ...], num_views: int) -> str:
    """'original + jigsaw x 4 + rcm x 4'."""
    return " + ".join(k if k == "original" else f"{k} x {num_views}" for k in kinds)


def main() -> None:
    run_cli(extract_features)
