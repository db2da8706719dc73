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
              type=click.Choice(["cub", "aircraft", "cars", "dogs", "flowers102", "nabirds", "folder"]),
              help="Which dataset's files and formats to write (aircraft, flowers102 and folder also get a val split).")
def main(out: str, classes: int, images_per_class: int, seed: int, layout: str) -> None:
    """Write a synthetic dataset in the exact CUB-200-2011 layout (or another dataset's, --layout)."""
    try:
        root = make_sample_dataset(out, classes, images_per_class, seed, layout=layout)
    except PipelineError as e:
        fail(e)
    print(f"wrote {classes * images_per_class} images in {classes} classes to {root}")
