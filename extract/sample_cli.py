"""`make-sample-dataset`: the command over pipeline.sample (the contract holds the writer, not the command)."""

from __future__ import annotations

import click

from pipeline.errors import PipelineError, fail
from pipeline.sample import make_sample_dataset

@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", default="data/sample", show_default=True,
              help="Parent directory; writes OUT/CUB_200_2011/ (or the layout's own directory).")
@click.option("--classes", default=10, show_default=True, help="Number of classes C.")
@click.option("--images-per-class", default=12, show_default=True, help="Images per class M (half train, half test).")
@click.option("--seed", default=0, show_default=True, help="Everything is deterministic from this seed.")
@click.option("--layout", default="cub", show_default=True,
              type=click.Choice(["cub", "aircraft", "cars", "dogs", "flowers102", "nabirds", "folder", "digits"]),
              help="Which dataset's files and formats to write (aircraft, flowers102 and folder also get a val split). "
                   "digits: REAL images, scikit-learn's handwritten digits as an image folder (pipeline.datasets.digits): "
                   "all 1,797 unless --images-per-class is given, 70/30 train/test stratified by --seed.")
@click.option("--size", default=64, show_default=True, help="--layout digits: the PNGs' side (bilinear from 8x8).")
@click.pass_context
def main(ctx: click.Context, out: str, classes: int, images_per_class: int, seed: int, layout: str, size: int) -> None:
    """Write a synthetic dataset in the exact CUB-200-2011 layout (or another dataset's, --layout; digits: real images)."""
    if layout == "digits":
        _digits(ctx, out, classes, images_per_class, seed, size)
        return
    if ctx.get_parameter_source("size") != click.core.ParameterSource.DEFAULT:
        fail(PipelineError(f"--size: applies to --layout digits only, not --layout {layout}"))
    try:
        root = make_sample_dataset(out, classes, images_per_class, seed, layout=layout)
    except PipelineError as e:
        fail(e)
    print(f"wrote {classes * images_per_class} images in {classes} classes to {root}")


def _digits(ctx: click.Context, out: str, classes: int, images_per_class: int, seed: int, size: int) -> None:
    """--layout digits: real images from scikit-learn (every image unless --images-per-class is given)."""
    from pipeline.datasets.digits import SOURCE, write_digits

    given = ctx.get_parameter_source("images_per_class") != click.core.ParameterSource.DEFAULT
    try:
        root = write_digits(out, size, seed, images_per_class if given else None, classes)
    except PipelineError as e:
        fail(e)
    counts = {split: sum(1 for _ in (root / split).glob("*/*.png")) for split in ("train", "test")}
    print(f"wrote {counts['train']} train / {counts['test']} test images in {classes} classes to {root}: {SOURCE}")
