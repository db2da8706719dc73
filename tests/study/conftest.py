"""Study fixtures: a small sample dataset and caches that match a spec, written without TensorFlow."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.schema import CacheLayout, dataset_fingerprint
from pipeline.writer import CacheWriter
from pipeline.cub import load_cub
from pipeline.sample import make_sample_dataset
from pipeline.views import make_patch_views

from tests.support.synthetic import patch_features

CLASSES, IMAGES = 3, 10  # 5 train + 5 test images per class
DIM = 16


@pytest.fixture(scope="session")
def study_root(tmp_path_factory) -> Path:
    return make_sample_dataset(tmp_path_factory.mktemp("study-data"), classes=CLASSES, images_per_class=IMAGES, seed=3,
                               min_side=40, max_side=60)


def spec_text(root: Path, features: Path, out: Path, *, methods=("none", "pirl"), ks=("all",), seeds=(0,), epochs=3,
              grid: str = "", image_size: int = 64, extra_heads: str = "") -> str:
    """A study spec over the sample dataset, caches in `features`, study directory `out`."""
    quoted = lambda xs: ", ".join(f'"{x}"' if isinstance(x, str) else str(x) for x in xs)  # noqa: E731
    return textwrap.dedent(f"""\
        name = "t"
        out = "{out}"
        [dataset]
        root = "{root}"
        [backbone]
        handle = "random-resnet50v2"
        precision = "fp32"
        image_size = {image_size}
        [views]
        num_views = 2
        rcm_grid = 2
        rcm_k = 1
        [extraction]
        features = "{features}"
        [heads]
        methods = [{quoted(methods)}]
        labels_per_class = [{quoted(ks)}]
        seeds = [{quoted(seeds)}]
        epochs = {epochs}
        batch_size = 8
        device = "cpu"
        precision = "fp32"
        val_per_class = 1
        {extra_heads}
        [grid]
        """) + textwrap.dedent(grid)


def write_spec(path: Path, *args: Any, **kwargs: Any) -> Path:
    path.write_text(spec_text(*args, **kwargs))
    return path


def write_matching_caches(spec_path: Path, dim: int = DIM, **config_changes: Any) -> None:
    """Complete train/test caches whose config is what the spec asks extract-features for (features: class
    means plus noise; views: the original plus noise; patches, when the spec asks for them: pipeline.views'
    permutations and offsets at the spec's patch geometry, each patch its cell's class mean plus noise), so a
    study reuses them and never starts TensorFlow."""
    from study.plan.make import MODEL_WEIGHTS, expected_config, likely_extraction_precision
    from study.spec import load_spec

    spec = load_spec(spec_path)
    for split in ("train", "test"):
        data = load_cub(spec.data_root, split)
        expected = expected_config(spec, split)
        if MODEL_WEIGHTS in expected:  # a torch backbone: its weights in the config's `model` record
            expected["model"] = {"framework": "torch", "weights": expected.pop(MODEL_WEIGHTS)}
        config = {"format_version": 1, **expected, "precision": likely_extraction_precision(spec.precision),
                  "preprocessing": "decode_rgb+resize_bilinear_antialias+scale_0_1",
                  "dataset": dataset_fingerprint(data.image_id, data.label, data.path), **config_changes}
        _write(spec.extraction.features / f"{split}.h5", config, data, dim, spec)


def _write(path: Path, config: dict, data: Any, dim: int, spec: Any) -> None:
    rng = np.random.default_rng(0 if data.split == "train" else 1)
    n, v = len(data), spec.num_views
    means = np.random.default_rng(42).standard_normal((len(data.class_names), dim)).astype(np.float32) * 1.5
    grids = {"jigsaw": spec.jigsaw_grid, "rcm": spec.rcm_grid}
    perms = {k: np.argsort(rng.random((n, v, grids[k] ** 2)), axis=-1).astype(np.int16)
             for k in ("jigsaw", "rcm") if k in spec.kinds}
    offsets = {}
    if "patches" in spec.kinds:  # the extraction's own crops: pipeline.views at the spec's patch geometry
        perms["patches"], offsets["patches"] = make_patch_views(
            spec.backbone_seed, data.image_id, v, spec.image_size, spec.patch_grid, spec.patch_size, spec.patch_jitter)
    hw = (2, 2) if spec.spatial else None
    layout = CacheLayout(config, data.image_id, data.label, data.path, data.class_names, dim, perms, hw,
                         {"backbone_weights": "random (untrained)", "backbone_endpoint": "synthetic"}, offsets=offsets)
    writer = CacheWriter.open(path, layout)
    own = rng.standard_normal((n, dim)).astype(np.float32)
    original = means[data.label] + own
    arrays = {"features/original": original}
    for kind in (k for k in perms if k != "patches"):
        arrays[f"features/{kind}"] = original[:, None] + 0.5 * rng.standard_normal((n, v, dim)).astype(np.float32)
    if "patches" in perms:  # (N, V, G*G, D) float16: each patch its cell's class mean plus noise
        arrays["features/patches"] = patch_features(rng, perms["patches"], data.label, own, len(data.class_names), 1.5)
    if hw is not None:
        arrays["spatial/original"] = np.repeat(np.repeat(original[:, None, None], 2, 1), 2, 2).astype(np.float16)
        if "rcm" in perms:
            arrays["spatial/rcm"] = np.repeat(np.repeat(arrays["features/rcm"][:, :, None, None], 2, 2), 2, 3
                                              ).astype(np.float16)
    writer.write(np.arange(n), arrays)
    writer.finish()
