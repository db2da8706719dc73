"""`python -m study.backbone_probe`: the backbone's inputs/s on a couple of batches, in ITS OWN process.

The study never imports TensorFlow; `study --plan` runs this module as a subprocess (as it runs
extract-features) and reads one JSON line: {"inputs_per_s", "startup_s", "batch", "precision"}.
startup_s is the time from process start to a loaded backbone (imports, model build or load).
"""

from __future__ import annotations

import json
import time

T0 = time.time()

import click  # noqa: E402


@click.command()
@click.option("--backbone", required=True)
@click.option("--image-size", type=int, required=True)
@click.option("--precision", required=True)
@click.option("--spatial", is_flag=True)
@click.option("--seed", type=int, default=0)
@click.option("--model-cache", default="data/models")
@click.option("--batch", type=int, default=32)
@click.option("--batches", type=int, default=2)
def main(backbone: str, image_size: int, precision: str, spatial: bool, seed: int, model_cache: str, batch: int,
         batches: int) -> None:
    """Print the backbone's measured inputs/s at this size and precision (one warm-up batch, then `batches`)."""
    from extract.native_logs import native_stderr_hidden

    with native_stderr_hidden(hide=True):
        import numpy as np
        import tensorflow as tf

        from extract.backbone import load_backbone
        from extract.precision import prepare_devices, resolve_precision

        used = resolve_precision(precision, prepare_devices())
        net = load_backbone(backbone, image_size, spatial=spatial, seed=seed, model_cache=model_cache, precision=used)
        images = tf.constant(np.random.default_rng(0).random((batch, image_size, image_size, 3), dtype=np.float32))
        net.run(images)  # warm-up: graph tracing, oneDNN kernels
        startup = time.time() - T0
        start = time.perf_counter()
        for _ in range(batches):
            pooled, _maps = net.run(images)
            np.asarray(pooled)
        seconds = time.perf_counter() - start
    print(json.dumps({"inputs_per_s": batch * batches / seconds, "startup_s": startup, "batch": batch,
                      "precision": used, "feature_dim": net.feature_dim, "weights": net.weights,
                      "spatial_shape": list(net.spatial_shape) if net.spatial_shape else None}))


if __name__ == "__main__":
    main()
