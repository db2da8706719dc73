"""Extraction throughput: the full tf.data pipeline (decode, views, inference, HDF5 writes) against the
model alone on preloaded arrays of the same batch shape. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_extract.py [--data-root data/sample/CUB_200_2011] [--image-size 224]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import extract  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np
import tensorflow as tf

from extract.backbone import load_backbone
from extract.inputs import ViewSpec
from extract.run import extract_split
from pipeline.cub import load_cub
from pipeline.sample import make_sample_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-root", default=None, help="CUB layout; default: a fresh 10x12 synthetic sample")
    ap.add_argument("--split", default="train")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--num-views", type=int, default=4)
    ap.add_argument("--spatial", action="store_true")
    ap.add_argument("--model-cache", default="data/models")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    root = args.data_root or make_sample_dataset(tmp, classes=10, images_per_class=12)
    data = load_cub(root, args.split)
    spec = ViewSpec(("original", "jigsaw", "rcm"), args.num_views, 3, 7, 2)
    net = load_backbone("random-resnet50v2", args.image_size, spatial=args.spatial, model_cache=args.model_cache)
    result = extract_split(data, net, tmp / "bench.h5", spec, args.image_size, 0, args.spatial, args.batch_size,
                           progress=False)
    pipe = result.inputs / result.seconds
    per_batch = max(1, args.batch_size // spec.per_image) * spec.per_image
    x = tf.constant(np.random.default_rng(0).random((per_batch, args.image_size, args.image_size, 3), np.float32))
    net.run(x)  # warm-up
    n, start = 0, time.perf_counter()
    while n < result.inputs:
        pooled, maps = net.run(x)
        pooled.numpy()
        n += per_batch
    alone = n / (time.perf_counter() - start)
    print(f"rows={len(data)} views/image={spec.per_image} image_size={args.image_size} batch={per_batch} "
          f"spatial={args.spatial} cores={tf.config.threading.get_inter_op_parallelism_threads() or 'default'}")
    print(f"pipeline:   {result.rows / result.seconds:7.1f} images/s  {pipe:7.1f} backbone inputs/s  ({result.seconds:.1f} s)")
    print(f"model only: {alone / spec.per_image:7.1f} images/s  {alone:7.1f} backbone inputs/s  (preloaded arrays)")
    print(f"pipeline / model: {pipe / alone:.2f}")


if __name__ == "__main__":
    main()
