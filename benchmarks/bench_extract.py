"""Extraction throughput, per precision, in one run: the full pipeline (decode, views, inference, HDF5
writes) against the model alone on preloaded arrays of the same batch shape; the input pipeline alone
(decode + views, no model); bf16 against fp32 in speed and in the features it stores; the cost of one "patches" view (nine patch
crops, each embedded at its own size) against one full-size input, counted in FLOPs and measured, and
the cosine of its float16-stored features to float32. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_extract.py [--data-root data/sample/CUB_200_2011] [--spatial]
        [--precision fp32,bf16] [--image-size 224] [--patches-only]

`--backbone` is a comma list, measured one after the other in this one run on the same sample, and ends with
a table of each backend's inputs/s (default `random-resnet50v2,torchvision:resnet50`: TensorFlow's and
PyTorch's ResNet-50 on the same machine). A `torchvision:<arch>` or `timm:<name>` entry (`--weights random` by
default, `--device auto`) runs on the PyTorch backend, without TensorFlow's pipeline: threaded PIL decoding,
views cut on the device, the model, the writer thread, against the model alone on inputs already on its
device, and the decoding alone. The patches view's cost (`--patches-only`) is TensorFlow's (`--no-patches`
leaves it out).

On a GPU (no TensorFlow needed: a torch-only list), `--min-side 375 --max-side 500` makes the sample's
pictures CUB-sized; the prepared script is `benchmarks/gpu_extract.sh`:

    python benchmarks/bench_extract.py --backbone torchvision:resnet50 --device cuda --batch-size 288 \
        --min-side 375 --max-side 500 --classes 40 --no-patches

`cpu` is the cores the process kept busy during each measurement (process CPU time / wall time): on a
machine shared with other jobs, a figure measured at well under the core count was competing for them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import extract  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np

from extract.backbone_names import is_torch_handle
from extract.config import ViewSpec
from extract.run import extract_split
from pipeline.cub import load_cub
from pipeline.sample import make_sample_dataset
from pipeline.views import make_permutations

from common import cpu_model, feature_cosines

# TensorFlow is imported by the TF-Hub backend's functions only: the torch backend (bench_extract_torch) runs
# without it


class Clock:
    """Wall seconds and the cores kept busy meanwhile."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = (time.process_time() - self.cpu) / self.wall



def model_alone(net, per_batch: int, image_size: int, inputs: int) -> tuple[float, float, float]:
    """The backbone on one preloaded batch, repeated until `inputs` inputs: (inputs, seconds, cores busy)."""
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).random((per_batch, image_size, image_size, 3), np.float32))
    n = 0
    with Clock() as c:
        while n < inputs:
            pooled, maps = net.run(x)
            pooled.numpy()
            if maps is not None:
                maps.numpy()
            n += per_batch
    return n, c.wall, c.cpu


def input_pipeline_alone(data, spec: ViewSpec, image_size: int, images_per_batch: int) -> tuple[float, float]:
    """images/s of decode + resize + views (the tf.data pipeline the extraction uses), no model; cores busy."""
    from extract.inputs import make_dataset

    files = [str(data.image_file(i)) for i in range(len(data))]
    perms = {k: make_permutations(k, 0, data.image_id, spec.num_views, spec.jigsaw_grid if k == "jigsaw" else spec.rcm_grid,
                                  spec.rcm_k) for k in ("jigsaw", "rcm") if k in spec.kinds}
    rows = np.arange(len(data))
    for _ in make_dataset(files, rows[:images_per_batch], perms, spec, image_size, images_per_batch):
        pass  # warm-up: file cache, tf.data start-up
    n = 0
    with Clock() as c:
        for _, stacks, _ in make_dataset(files, rows, perms, spec, image_size, images_per_batch):
            n += int(stacks.shape[0])
    return n / c.wall, c.cpu


def conv_flops(size: int) -> int:
    """Multiply-adds x 2 of ResNet-50 v2's convolutions (and nothing else) on one size x size input, counted
    layer by layer from the Keras model's output shapes."""
    import tf_keras

    net = tf_keras.applications.ResNet50V2(weights=None, include_top=False, pooling="avg", input_shape=(size, size, 3))
    total = 0
    for layer in net.layers:
        if isinstance(layer, tf_keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            _, h, w, c_out = layer.output.shape
            total += 2 * kh * kw * int(layer.input.shape[-1]) * int(c_out) * int(h) * int(w)
    return total


def patch_cost(data, args) -> None:
    """One patches view (G*G crops of P px) against one full-size input: FLOPs counted, seconds measured
    (fp32, preloaded arrays), and the float16 storage's cosine to the float32 features (random backbone)."""
    import tensorflow as tf

    from extract.backbone import load_backbone
    from extract.inputs import make_dataset

    spec = ViewSpec(("original", "patches"), args.num_views, 3, 7, 2)
    cell, patch, jitter = spec.patch_geometry(args.image_size)
    k = spec.patch_grid ** 2
    full, small = conv_flops(args.image_size), conv_flops(patch)
    print(f"patches at --image-size {args.image_size}: {k} crops of {patch} px (cells of {cell} px, jitter 0..{jitter})")
    print(f"  FLOPs (convolutions, counted): one {args.image_size} px input {full / 1e9:.2f} G, one {patch} px patch "
          f"{small / 1e9:.3f} G; one view = {k} patches = {k * small / full:.2f} x one full input")
    net = load_backbone("random-resnet50v2", args.image_size, model_cache=args.model_cache, precision="fp32")
    rng = np.random.default_rng(0)
    b = max(1, args.batch_size // (k + 1))
    x_full = tf.constant(rng.random((b, args.image_size, args.image_size, 3), np.float32))
    x_patch = tf.constant(rng.random((b * k, patch, patch, 3), np.float32))
    seconds = {}
    for name, x in (("full", x_full), ("patches", x_patch)):
        net.run(x)[0].numpy()  # warm-up of the shape
        with Clock() as c:
            for _ in range(3):
                net.run(x)[0].numpy()
        seconds[name] = c.wall / 3 / b
    print(f"  measured (fp32, model alone, {b} images per batch): one full input {seconds['full'] * 1e3:.1f} ms, one "
          f"view of {k} patches {seconds['patches'] * 1e3:.1f} ms = {seconds['patches'] / seconds['full']:.2f} x")
    files = [str(data.image_file(i)) for i in range(len(data))]
    from pipeline.views import make_patch_views

    _, offsets = make_patch_views(0, data.image_id, spec.num_views, args.image_size)
    rows = np.arange(len(data))
    feats = [net.run(tf.reshape(crops, [-1, patch, patch, 3]))[0].numpy()
             for _, _, crops in make_dataset(files, rows, {}, spec, args.image_size, 8, offsets)]
    f32 = np.concatenate(feats).astype(np.float32)
    f16 = f32.astype(np.float16).astype(np.float32)
    cos = (f32 * f16).sum(1) / np.maximum(np.linalg.norm(f32, axis=1) * np.linalg.norm(f16, axis=1), 1e-30)
    print(f"  float16 storage of {len(f32)} patch features (random-resnet50v2, UNTRAINED): cosine to float32 min "
          f"{cos.min():.7f} mean {cos.mean():.7f}; largest |value| {np.abs(f32).max():.3g} (float16 max 65504)")
    n, v = 5994, args.num_views
    print(f"  disk: CUB train at V = {v}: {n} x {v} x {k} x {f32.shape[1]} x 2 bytes = "
          f"{n * v * k * f32.shape[1] * 2 / 2**30:.2f} GiB (float32: {n * v * k * f32.shape[1] * 4 / 2**30:.2f} GiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=None, help="CUB layout; default: a fresh synthetic sample")
    ap.add_argument("--backbone", default="random-resnet50v2,torchvision:resnet50",
                    help="comma list of random-resnet50v2 (or a TF-Hub handle: TensorFlow) and torchvision:<arch> / "
                         "timm:<name> (PyTorch), measured one after the other")
    ap.add_argument("--weights", default="random", help="a torch backbone's --weights")
    ap.add_argument("--device", default="auto", help="a torch backbone's --device")
    ap.add_argument("--classes", type=int, default=10, help="the synthetic sample's classes (12 images each)")
    ap.add_argument("--min-side", type=int, default=96, help="the synthetic sample's smallest picture side")
    ap.add_argument("--max-side", type=int, default=200, help="the synthetic sample's largest picture side")
    ap.add_argument("--split", default="train")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--num-views", type=int, default=4)
    ap.add_argument("--spatial", action="store_true")
    ap.add_argument("--precision", default=None,
                    help="comma list of fp32,bf16,fp16 (default: fp32, plus bf16 on a CPU with it, fp16 on a GPU)")
    ap.add_argument("--model-cache", default="data/models")
    ap.add_argument("--patches-only", action="store_true", help="only the patches view's cost and float16 check")
    ap.add_argument("--figures-json", default=None, help=argparse.SUPPRESS)  # one backbone's figures, for the table
    ap.add_argument("--no-patches", action="store_true", help="leave out the patches view's cost and float16 check")
    args = ap.parse_args()
    backbones = [b for b in args.backbone.split(",") if b]
    tmp = Path(tempfile.mkdtemp())
    root = args.data_root or make_sample_dataset(tmp, classes=args.classes, images_per_class=12,
                                                 min_side=args.min_side, max_side=args.max_side)
    data = load_cub(root, args.split)
    print(f"CPU: {cpu_model()}; {len(data)} {args.split} images of {root}; backbones {', '.join(backbones)}")
    if len(backbones) > 1:  # each in its own process: TensorFlow and torch in one process crash (a segfault here)
        return compare_in_subprocesses(backbones, root, tmp)
    handle = backbones[0]
    print(f"--- {handle}")
    if is_torch_handle(handle):
        from bench_extract_torch import run_torch

        figures = run_torch(args, handle, data, tmp)
    else:
        figures = run_tf(args, handle, data, tmp)
    if args.figures_json:
        Path(args.figures_json).write_text(json.dumps({p: list(f) for p, f in (figures or {}).items()}))


def compare_in_subprocesses(backbones: list[str], root: Path, tmp: Path) -> None:
    """This script once per backbone, on the same sample, one after the other; then the table of all of them."""
    argv, skip = [], False
    for a in sys.argv[1:]:  # this run's options but --backbone and --data-root
        if skip:
            skip = False
        elif a in ("--backbone", "--data-root"):
            skip = True
        elif not a.startswith(("--backbone=", "--data-root=")):
            argv.append(a)
    summary = []
    for i, handle in enumerate(backbones):
        out = tmp / f"figures-{i}.json"
        sys.stdout.flush()
        proc = subprocess.run([sys.executable, __file__, *argv, "--backbone", handle, "--data-root", str(root),
                               "--figures-json", str(out)])
        if proc.returncode != 0 or not out.is_file():
            print(f"--- {handle}: failed (exit code {proc.returncode})")
            continue
        summary += [(handle, p, pipe, alone) for p, (pipe, alone) in json.loads(out.read_text()).items()]
    print("--- summary (inputs/s on this machine, this run, the same sample)")
    print(f"{'backbone':<28} {'precision':<9} {'pipeline':>9} {'model only':>11} {'ratio':>6}")
    for handle, p, pipe, alone in summary:
        print(f"{handle:<28} {p:<9} {pipe:9.1f} {alone:11.1f} {pipe / alone:6.2f}")


def run_tf(args, handle: str, data, tmp: Path) -> dict[str, tuple[float, float]]:
    """The TF-Hub backend (random-resnet50v2 or a handle): per precision, (pipeline, model alone) inputs/s."""
    import tensorflow as tf

    from extract.backbone import load_backbone
    from extract.precision import prepare_devices, resolve_precision

    devices = prepare_devices()
    best = resolve_precision("auto", devices)
    precisions = args.precision.split(",") if args.precision else ["fp32"] + ([best] if best != "fp32" else [])
    for p in precisions:
        resolve_precision(p, devices)  # stop before any work on a precision this machine lacks
    print(f"GPUs: {', '.join(devices.gpus) or 'none'}; TensorFlow {tf.__version__}")
    if not args.no_patches:
        patch_cost(data, args)
    if args.patches_only:
        return {}
    spec = ViewSpec(("original", "jigsaw", "rcm"), args.num_views, 3, 7, 2)
    block = max(1, args.batch_size // spec.per_image)
    per_batch = block * spec.per_image
    print(f"rows={len(data)} views/image={spec.per_image} image_size={args.image_size} batch={per_batch} inputs "
          f"spatial={args.spatial} backbone={handle}")

    figures, caches, cores = {}, {}, {}
    for p in precisions:
        net = load_backbone(handle, args.image_size, spatial=args.spatial, model_cache=args.model_cache, precision=p)
        model_alone(net, per_batch, args.image_size, per_batch)  # warm-up of the batch shape for both runs
        inputs = len(data) * spec.per_image
        before = model_alone(net, per_batch, args.image_size, inputs // 2)  # half before the pipeline, half
        caches[p] = tmp / f"bench-tf-{p}.h5"                                # after: drift of the machine cancels
        with Clock() as c:
            result = extract_split(data, net, caches[p], spec, args.image_size, 0, args.spatial, args.batch_size,
                                   progress=False)
        after = model_alone(net, per_batch, args.image_size, inputs - before[0])
        pipe = result.inputs / result.seconds
        alone = (before[0] + after[0]) / (before[1] + after[1])
        alone_cpu = (before[2] * before[1] + after[2] * after[1]) / (before[1] + after[1])
        figures[p] = (pipe, alone)
        cores[p] = [("pipeline", c.cpu), ("model only", alone_cpu)]
        print(f"[{p}] pipeline:   {pipe:6.1f} inputs/s ({pipe / spec.per_image:5.2f} images/s, "
              f"{result.seconds:.1f} s, cpu {c.cpu:.2f})")
        print(f"[{p}] model only: {alone:6.1f} inputs/s ({alone / spec.per_image:5.2f} images/s, preloaded arrays, "
              f"cpu {alone_cpu:.2f})")
        print(f"[{p}] pipeline / model: {pipe / alone:.2f}")

    rate, rate_cpu = input_pipeline_alone(data, spec, args.image_size, block)
    fastest = max(alone for _, alone in figures.values()) / spec.per_image
    print(f"input pipeline alone (decode + resize + {spec.per_image - 1} views, no model): {rate:.1f} images/s "
          f"(cpu {rate_cpu:.2f}) = {rate / fastest:.1f}x the fastest model-alone rate here ({fastest:.2f} images/s)")
    busy = [f"{p} {what}" for p in precisions for what, cpu in cores[p] if cpu < 0.75 * os.cpu_count()]
    if busy:
        print(f"note: {', '.join(busy)} kept fewer than 75% of the {os.cpu_count()} cores busy: other jobs may have "
              "competed for them; compare figures from a quiet machine")
    base = precisions[0]
    for p in precisions[1:]:
        cos = feature_cosines(caches[base], caches[p])
        print(f"{p} / {base}: pipeline {figures[p][0] / figures[base][0]:.2f}x, model alone "
              f"{figures[p][1] / figures[base][1]:.2f}x; feature cosine min {cos.min():.6f} mean {cos.mean():.6f} "
              f"over {len(cos)} vectors")
    return figures


if __name__ == "__main__":
    main()
