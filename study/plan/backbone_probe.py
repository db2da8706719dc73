"""`python -m study.plan.backbone_probe`: the backbone's inputs/s on a couple of batches, in ITS OWN process.

The study never imports TensorFlow; `study --plan` runs this module as a subprocess (as it runs
extract-features) and reads one JSON line: {"inputs_per_s", "startup_s", "batch", "precision", ...}.
startup_s is the time from process start to a warmed-up backbone (imports, load, first batch), as an
extraction pays it; building random-resnet50v2 the first time is timed apart (build_s) and left out,
since the extraction then loads the copy the probe saved. figure_s is the process's first figure (matplotlib's
import and fonts, drawn and saved), which an extraction pays at its end for its views figure; elapsed_s is the
time from process start to the JSON line, so that the caller can time the process's exit (study.plan.calibrate).

A TF-Hub ResNet-50 that is neither cached nor reachable (offline) is timed on a stand-in:
random-resnet50v2, the same ResNet-50 v2 architecture and so the same FLOPs per input; the JSON then
names it ("stand_in") and `study --plan` says so. Any other unreachable model fails as extraction would.

A torch backbone (torchvision:<arch>, timm:<name>; extract.torch_backbone) is timed on its device (--device)
with the inputs already there, and TensorFlow is not imported; without --weights its architecture is timed
with random weights (the same FLOPs), named as the stand-in.
"""

from __future__ import annotations

import json
import time

T0 = time.time()

import click  # noqa: E402

RESNET50_HUB_MARKS = ("resnet_v2_50", "resnet_v1_50", "resnet_50", "resnet-50", "resnet50")  # ~4.1 GFLOPs at 224 px


def stand_in_for(handle: str) -> str | None:
    """random-resnet50v2 for a TF-Hub ResNet-50 handle (same architecture, same FLOPs); None otherwise."""
    from extract.backbone_names import RANDOM_RESNET

    if "://" in handle and any(mark in handle.lower() for mark in RESNET50_HUB_MARKS):
        return RANDOM_RESNET
    return None


def _load(backbone: str, image_size: int, spatial: bool, seed: int, model_cache: str, precision: str):
    """(backbone, stand-in name or None, seconds spent building a random backbone for the first time)."""
    from pathlib import Path

    from extract.backbone import build_random_resnet50v2, load_backbone
    from extract.backbone_names import RANDOM_RESNET
    from pipeline.errors import PipelineError

    stand_in = None
    try:
        if backbone != RANDOM_RESNET:
            return load_backbone(backbone, image_size, spatial=spatial, seed=seed, model_cache=model_cache,
                                 precision=precision), None, 0.0
    except PipelineError as e:
        stand_in = stand_in_for(backbone)
        if stand_in is None or "cannot load the TF-Hub model" not in str(e):
            raise
    start = time.time()
    build_random_resnet50v2(Path(model_cache) / f"{RANDOM_RESNET}-seed{seed}", seed)
    build = time.time() - start
    net = load_backbone(RANDOM_RESNET, image_size, spatial=spatial, seed=seed, model_cache=model_cache,
                        precision=precision)
    return net, stand_in, build


@click.command()
@click.option("--backbone", required=True)
@click.option("--image-size", type=int, required=True)
@click.option("--precision", required=True)
@click.option("--spatial", is_flag=True)
@click.option("--seed", type=int, default=0)
@click.option("--model-cache", default="data/models")
@click.option("--batch", type=int, default=32)
@click.option("--batches", type=int, default=2)
@click.option("--weights", default=None, help="A torch backbone's --weights (random or a file).")
@click.option("--device", default="auto", help="A torch backbone's --device.")
def main(backbone: str, image_size: int, precision: str, spatial: bool, seed: int, model_cache: str, batch: int,
         batches: int, weights: str | None, device: str) -> None:
    """Print the backbone's measured inputs/s at this size and precision (one warm-up batch, then `batches`)."""
    from extract.backbone_names import is_torch_handle
    from extract.native_logs import native_stderr_hidden

    if is_torch_handle(backbone):
        with native_stderr_hidden(hide=True):
            out = _torch_probe(backbone, weights, image_size, precision, device, spatial, seed, batch, batches)
        print(json.dumps({**out, "figure_s": first_figure_s(), "elapsed_s": time.time() - T0}))
        return
    with native_stderr_hidden(hide=True):
        import numpy as np
        import tensorflow as tf

        from extract.precision import prepare_devices, resolve_precision

        used = resolve_precision(precision, prepare_devices())
        net, stand_in, build_s = _load(backbone, image_size, spatial, seed, model_cache, used)
        images = tf.constant(np.random.default_rng(0).random((batch, image_size, image_size, 3), dtype=np.float32))
        net.run(images)  # warm-up: graph tracing, oneDNN kernels
        startup = time.time() - T0 - build_s
        start = time.perf_counter()
        for _ in range(batches):
            pooled, _maps = net.run(images)
            np.asarray(pooled)
        seconds = time.perf_counter() - start
    print(json.dumps({"inputs_per_s": batch * batches / seconds, "startup_s": startup, "build_s": build_s,
                      "batch": batch, "precision": used, "feature_dim": net.feature_dim, "weights": net.weights,
                      "stand_in": stand_in, "figure_s": first_figure_s(),
                      "spatial_shape": list(net.spatial_shape) if net.spatial_shape else None,
                      "elapsed_s": time.time() - T0}))


def first_figure_s() -> float:
    """Seconds this process takes to draw and save its first views figure (pipeline.figures.save_views_figure, as
    extract-features does at the end of an extraction: matplotlib's import, its fonts), of four random images."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from pipeline.figures import save_views_figure

    images = [np.random.default_rng(i).random((64, 64, 3)) for i in range(4)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        save_views_figure(Path(tmp) / "views.png", images, [f"image {i}" for i in range(4)], None, None, 3, 3)
    return time.perf_counter() - start



def _torch_probe(backbone: str, weights: str | None, image_size: int, precision: str, device: str, spatial: bool,
                 seed: int, batch: int, batches: int) -> dict:
    """The torch model alone on inputs already on its device (what extraction's forward pass costs)."""
    import numpy as np

    from extract.backbone_names import RANDOM_WEIGHTS
    from extract.torch_backbone import load_torch_backbone

    stand_in = None if weights is not None else f"{backbone} with {RANDOM_WEIGHTS} weights (no --weights given)"
    net = load_torch_backbone(backbone, weights or RANDOM_WEIGHTS, image_size, spatial=spatial, seed=seed,
                              device=device, precision=precision)
    x = net.normalise(np.random.default_rng(0).integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8))
    _sync(net.forward(x, spatial))  # warm-up: kernels, oneDNN primitives, cuDNN autotuning
    startup = time.time() - T0
    start = time.perf_counter()
    for _ in range(batches):
        _sync(net.forward(x, spatial))
    seconds = time.perf_counter() - start
    return {"inputs_per_s": batch * batches / seconds, "startup_s": startup, "build_s": 0.0, "batch": batch,
            "precision": net.precision, "device": net.device, "feature_dim": net.feature_dim, "weights": net.weights,
            "stand_in": stand_in, "spatial_shape": list(net.spatial_shape) if net.spatial_shape else None}


def _sync(outputs: tuple) -> None:
    """Wait for the device: the pooled vector (and map) on the host."""
    pooled, maps = outputs
    pooled.cpu()
    if maps is not None:
        maps.cpu()


if __name__ == "__main__":
    from pipeline.errors import run_cli

    run_cli(main)  # a PipelineError is one 'error: ...' line, which study.plan.calibrate reports
