"""TF-Hub backbones behind one contract: float32 RGB in [0, 1], (B, S, S, 3) -> pooled (B, D) and,
when asked for, the last spatial map (B, h, w, D); `Backbone.batches` is extract.embedding's contract.

A handle is a TF-Hub URL, a local SavedModel directory, or `random-resnet50v2` (the real ResNet-50 v2
architecture with seeded random weights, saved once as a SavedModel and loaded like a hub model).
PyTorch backbones (torchvision:, timm:) are `extract.torch_backbone`; `extract.backbones` picks one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import tensorflow as tf

from pipeline.errors import PipelineError

from .backbone_names import RANDOM_RESNET, UNTRAINED
from .config import PREPROCESSING
from .embedding import Batch, Work
from .precision import apply_precision


# tf_keras ResNet50V2(include_top=False, pooling=None) ends with layers `post_bn` and `post_relu`.
RANDOM_RESNET_ACTIVATION = " (ResNet50V2 after its final post_bn + post_relu: post-norm)"


@dataclass
class Backbone:
    handle: str
    weights: str  # "pretrained" or "random (untrained)"
    feature_dim: int
    spatial_shape: tuple[int, int] | None  # (h, w) of the spatial map, None when not kept
    endpoint: str  # which output gives the features ("output", or a return_endpoints key)
    run: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor | None]]
    spatial_activation: str | None = None  # which activation the spatial maps are (None without maps)
    precision: str = "fp32"  # "fp32", "bf16" or "fp16" (extract.precision); outputs are float32 in all
    preprocessing: str = PREPROCESSING  # TF-Hub's image contract (the cache config's `preprocessing`)
    model: dict[str, Any] | None = None  # the cache config's `model`: only torch backbones record one

    @property
    def untrained(self) -> bool:
        return self.weights == UNTRAINED

    def batches(self, work: Work) -> Iterator[Batch]:
        """extract.embedding's contract: the pending blocks through the tf.data pipeline and this model."""
        from .tf_batches import tf_batches

        return tf_batches(self, work)


def build_random_resnet50v2(directory: Path, seed: int) -> Path:
    """Save ResNet-50 v2 (random weights from `seed`) as a SavedModel taking [0, 1] input; once."""
    if (directory / "saved_model.pb").is_file():
        return directory
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    net = tf_keras.applications.ResNet50V2(weights=None, include_top=False, pooling=None, input_shape=(None, None, 3))

    class HubLike(tf.Module):
        def __init__(self, model: tf_keras.Model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, images: tf.Tensor) -> tf.Tensor:
            return self.model(images * 2.0 - 1.0, training=False)  # Keras ResNetV2 expects [-1, 1]

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=directory.parent))
    try:
        tf.saved_model.save(HubLike(net), str(staging))
        if not directory.exists():
            staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _load_layer(handle: str, return_endpoints: bool):
    import tensorflow_hub as hub

    kwargs = {"arguments": {"return_endpoints": True}} if return_endpoints else {}
    try:
        return hub.KerasLayer(handle, trainable=False, **kwargs)
    except Exception as e:  # hub raises many types: URLError, OSError, ValueError, NotFoundError
        if "://" in handle:
            raise PipelineError(
                f"--backbone {handle}: cannot load the TF-Hub model ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
                "Without network, set TFHUB_CACHE_DIR to a directory holding a cached copy, "
                "or pass --backbone /path/to/a/local/SavedModel directory"
            ) from None
        raise PipelineError(f"--backbone {handle}: cannot load the SavedModel ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


# Endpoint names of a map taken after a ResNet v2's final batch norm + ReLU. Slim's resnet_v2 applies
# it as `postnorm` but does not collect it into its end_points (only conv2d, bottleneck and block
# outputs are collected), so TF-Hub's slim v2 models expose `.../block4`, which comes BEFORE it, while
# their pooled `default` is the mean of the post-norm map. A model that does export it is preferred.
POSTNORM_ENDPOINTS = ("postnorm", "post_relu")


def _pick_endpoints(out: dict, spatial: bool) -> tuple[str, str | None]:
    keys = sorted(out)
    pooled = "default" if "default" in out else next((k for k in keys if len(out[k].shape) == 2), None)
    if pooled is None:
        raise PipelineError(f"backbone endpoints {keys}: none is a pooled (B, D) vector")
    spatial_key = None
    if spatial:
        maps = [k for k in keys if len(out[k].shape) == 4 and out[k].shape[-1] == out[pooled].shape[-1]]
        grids = [k for k in maps if tuple(out[k].shape[1:3]) != (1, 1)] or maps  # not a kept-dims pool (global_pool)
        postnorm = [k for k in grids if k.rsplit("/", 1)[-1] in POSTNORM_ENDPOINTS]
        block4 = [k for k in grids if k.endswith("block4")]
        spatial_key = (postnorm or block4 or grids or [None])[-1]
        if spatial_key is None:
            raise PipelineError(f"backbone endpoints {keys}: none is a spatial map with {out[pooled].shape[-1]} channels")
    return pooled, spatial_key


def _mean_is_pooled(maps: tf.Tensor, pooled: tf.Tensor) -> bool:
    """Whether the pooled vector is the mean of the map over h, w (checked on the probe image)."""
    mean = tf.reduce_mean(maps, axis=[1, 2]).numpy()
    ref = pooled.numpy().reshape(mean.shape)
    return bool(abs(mean - ref).max() <= 1e-3 * (abs(ref).max() + 1e-6))


def describe_spatial_activation(key: str, mean_is_pooled: bool) -> str:
    """The `spatial_activation` cache attribute: which activation the stored maps are."""
    name = key.rsplit("/", 1)[-1]
    if name in POSTNORM_ENDPOINTS:
        what = "after the network's final batch norm + ReLU (post-norm)"
    elif name == "block4":
        what = ("the last block's output; for ResNet v2 this is before the final batch norm + ReLU "
                "(slim `postnorm`, not exported)" if not mean_is_pooled else "the last block's output")
    else:
        what = "a 4-D endpoint"
    pooled = "features/original is its mean over h, w" if mean_is_pooled else \
        "features/original is NOT its mean over h, w (the model pools a different activation)"
    return f"{key}: {what}; {pooled}"


def _resolve_handle(handle: str, seed: int, model_cache: str | os.PathLike) -> tuple[str, str]:
    """(what to load, the weights' label): random-resnet50v2 is built once; a local path must be a SavedModel."""
    if handle == RANDOM_RESNET:
        return str(build_random_resnet50v2(Path(model_cache) / f"{RANDOM_RESNET}-seed{seed}", seed)), UNTRAINED
    if "://" not in handle:
        if not Path(handle).is_dir():
            raise PipelineError(f"--backbone {handle}: neither a URL, {RANDOM_RESNET}, nor an existing directory")
        if not (Path(handle) / "saved_model.pb").is_file():
            raise PipelineError(f"--backbone {handle}: directory holds no saved_model.pb (expected a TF2 SavedModel)")
    return handle, "pretrained"


def _endpoints_backbone(handle: str, weights: str, path: str, layer, out, probe: tf.Tensor, spatial: bool,
                        precision: str) -> Backbone:
    """A model with named endpoints (a dict output, or asked for with return_endpoints=True for --spatial)."""
    if not isinstance(out, dict):
        try:
            layer = _load_layer(path, return_endpoints=True)
            out = layer(probe)
        except Exception:
            out = None
        if not isinstance(out, dict):
            raise PipelineError(f"--backbone {handle}: gives only pooled vectors; --spatial needs a model that "
                                "outputs a 4-D map or supports return_endpoints=True")
    pooled_key, spatial_key = _pick_endpoints(out, spatial)

    def run(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        o = layer(images)
        return o[pooled_key], (o[spatial_key] if spatial_key else None)

    dim = int(out[pooled_key].shape[-1])
    shape = tuple(int(s) for s in out[spatial_key].shape[1:3]) if spatial_key else None
    activation = (describe_spatial_activation(spatial_key, _mean_is_pooled(out[spatial_key], out[pooled_key]))
                  if spatial_key else None)
    return Backbone(handle, weights, dim, shape, spatial_key or pooled_key, run, activation, precision=precision)


def _map_backbone(handle: str, weights: str, layer, out, spatial: bool, precision: str) -> Backbone:
    """A model whose output is a 4-D spatial map: keep it and pool it for the vector."""

    def run(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        m = layer(images)
        return tf.reduce_mean(m, axis=[1, 2]), (m if spatial else None)

    shape = tuple(int(s) for s in out.shape[1:3]) if spatial else None
    activation = None
    if spatial:
        activation = ("output: the model's 4-D output; features/original is its mean over h, w"
                      + (RANDOM_RESNET_ACTIVATION if handle == RANDOM_RESNET else ""))
    return Backbone(handle, weights, int(out.shape[-1]), shape, "output (mean over h, w)", run, activation,
                    precision=precision)


def load_backbone(handle: str, image_size: int, spatial: bool = False, seed: int = 0,
                  model_cache: str | os.PathLike = "data/models", precision: str = "fp32") -> Backbone:
    """Resolve `handle`, probe it once on a zero image and return the callable contract.

    `precision` (fp32, bf16 or fp16, see extract.precision) is set before the model is loaded.
    """
    apply_precision(precision)
    path, weights = _resolve_handle(handle, seed, model_cache)
    probe = tf.random.stateless_uniform([1, image_size, image_size, 3], seed=[0, 1])
    layer = _load_layer(path, return_endpoints=False)
    out = layer(probe)
    if isinstance(out, dict) or (spatial and len(out.shape) == 2):
        return _endpoints_backbone(handle, weights, path, layer, out, probe, spatial, precision)
    if len(out.shape) == 4:
        return _map_backbone(handle, weights, layer, out, spatial, precision)
    if len(out.shape) != 2:
        raise PipelineError(f"--backbone {handle}: output of shape {tuple(out.shape)}, expected (B, D) or (B, h, w, D)")

    def run(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        return layer(images), None

    return Backbone(handle, weights, int(out.shape[-1]), None, "output", run, precision=precision)
