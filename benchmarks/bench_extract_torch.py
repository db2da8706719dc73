"""The torch backend of bench_extract.py (a `--backbone` entry torchvision:<arch> or timm:<name>), without TensorFlow:
per precision, the whole pipeline (threaded PIL decoding, the views cut on the device, the model, the writer
thread) against the model alone on inputs already on its device, and the decoding alone. Prints figures.

`cpu` is the cores the process kept busy during each measurement (CPU time / wall time): well under the core
count on a CPU means other jobs competed for the cores.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from extract.config import ViewSpec
from extract.image_blocks import image_blocks
from extract.run import extract_split
from extract.torch_backbone import load_torch_backbone
from extract.torch_device import resolve_device, resolve_torch_precision

from common import feature_cosines


def model_alone(net, per_batch: int, image_size: int, inputs: int, spatial: bool) -> tuple[int, float, float]:
    """The model on one batch already on its device (normalised), repeated until `inputs`: (inputs, seconds, CPU
    seconds of this process)."""
    x = net.normalise(np.random.default_rng(0).integers(0, 256, (per_batch, image_size, image_size, 3), np.uint8))
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while n < inputs:
        pooled, maps = net.forward(x, spatial)
        pooled.cpu()  # waits for the device
        if maps is not None:
            maps.cpu()
        n += per_batch
    return n, time.perf_counter() - start, time.process_time() - cpu


def decoding_alone(data, image_size: int, block: int, workers: int) -> float:
    """images/s of the threaded decode + resize (extract.image_blocks), no views, no model."""
    files = [str(data.image_file(i)) for i in range(len(data))]
    rows = np.arange(len(data))
    for _ in image_blocks(files, rows[:block], data.image_id, image_size, block, workers):
        pass  # warm-up: the file cache
    start = time.perf_counter()
    n = sum(len(r) for r, _ in image_blocks(files, rows, data.image_id, image_size, block, workers))
    return n / (time.perf_counter() - start)


def run_torch(args, handle: str, data, tmp: Path) -> dict[str, tuple[float, float]]:
    """Per precision, (pipeline, model alone) inputs/s of the torch backbone `handle`."""
    import torch

    device = resolve_device(args.device)
    best = resolve_torch_precision("auto", device)
    precisions = args.precision.split(",") if args.precision else ["fp32"] + ([best] if best != "fp32" else [])
    for p in precisions:
        resolve_torch_precision(p, device)  # stop before any work on a precision this device lacks
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none"
    print(f"GPU: {gpu}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"backbone {handle} --weights {args.weights} on {device}")
    spec = ViewSpec(("original", "jigsaw", "rcm"), args.num_views, 3, 7, 2)
    block = max(1, args.batch_size // spec.per_image)
    per_batch = block * spec.per_image
    caches, figures = {}, {}
    for p in precisions:
        net = load_torch_backbone(handle, args.weights, args.image_size, spatial=args.spatial, device=device,
                                  precision=p)
        if p == precisions[0]:
            print(f"rows={len(data)} views/image={spec.per_image} image_size={args.image_size} batch={per_batch} "
                  f"inputs spatial={args.spatial} feature_dim={net.feature_dim} decode threads={net.workers}")
        model_alone(net, per_batch, args.image_size, per_batch, args.spatial)  # warm-up of the batch shape
        inputs = len(data) * spec.per_image
        before = model_alone(net, per_batch, args.image_size, inputs // 2, args.spatial)  # half before, half after:
        caches[p] = tmp / f"bench-torch-{p}.h5"                                                  # drift cancels
        cpu = time.process_time()
        result = extract_split(data, net, caches[p], spec, args.image_size, 0, args.spatial, args.batch_size,
                               progress=False)
        pipe_cpu = (time.process_time() - cpu) / result.seconds
        after = model_alone(net, per_batch, args.image_size, inputs - before[0], args.spatial)
        pipe = result.inputs / result.seconds
        alone = (before[0] + after[0]) / (before[1] + after[1])
        alone_cpu = (before[2] + after[2]) / (before[1] + after[1])
        figures[p] = (pipe, alone)
        print(f"[{p}] pipeline:   {pipe:8.1f} inputs/s ({pipe / spec.per_image:7.2f} images/s, {result.seconds:.1f} s, "
              f"cpu {pipe_cpu:.2f})")
        print(f"[{p}] model only: {alone:8.1f} inputs/s (inputs already on the {device}, cpu {alone_cpu:.2f})")
        print(f"[{p}] pipeline / model: {pipe / alone:.2f}")
    workers = net.workers
    rate = decoding_alone(data, args.image_size, block, workers)
    print(f"decoding alone ({workers} threads: PIL decode + resize to {args.image_size}): {rate:.1f} images/s = "
          f"{rate * spec.per_image:.1f} inputs/s of views")
    base = precisions[0]
    for p in precisions[1:]:
        cos = feature_cosines(caches[base], caches[p])
        print(f"{p} / {base}: pipeline {figures[p][0] / figures[base][0]:.2f}x, model alone "
              f"{figures[p][1] / figures[base][1]:.2f}x; feature cosine min {cos.min():.6f} mean {cos.mean():.6f}")
    return figures
