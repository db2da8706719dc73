"""PyTorch backbones (`--backbone torchvision:<arch>` or `timm:<name>`, `--weights random|PATH`) behind
extract.embedding's contract, writing the same cache as a TF-Hub backbone: the same views, permutations and
crops (from pipeline/), pooled features for every view kind, spatial maps with --spatial.

Each block of images is decoded by worker threads ahead of the model (`extract.image_blocks`, PIL), crosses
to the device once as uint8, is normalised there with the weights' mean and std, and its views are cut there
(`extract.torch_views`); the model runs channels_last, under torch.autocast (bf16 or fp16) where asked. On a
GPU the outputs of block i are copied back while block i + 1 is computed. TensorFlow is never imported.

The cache records the backbone in its config: `preprocessing` (the PIL decode and resize, and the
normalisation) and `model` (framework, library, architecture, weights: "random" or the file's sha256, the
feature width, the map grid), so caches of two weights never pair and never resume one another.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pipeline.errors import PipelineError

from .backbone_names import RANDOM_WEIGHTS, UNTRAINED, torch_handle
from .embedding import Batch, Work, split_outputs
from .image_blocks import image_blocks
from .images import PIL_PREPROCESSING
from .torch_device import (autocast_dtype, decode_workers, resolve_device, resolve_torch_precision,
                           set_cpu_threads)
from .torch_nets import TorchNet, build_net
from .torch_views import cut_patches, whole_views
from .torch_weights import file_sha256


def preprocessing_text(mean: tuple[float, ...], std: tuple[float, ...]) -> str:
    """The cache config's `preprocessing` of a torch backbone."""
    def floats(values: tuple[float, ...]) -> str:
        return ",".join(f"{v:.4g}" for v in values)

    return f"{PIL_PREPROCESSING}+normalize(mean={floats(mean)};std={floats(std)})"


@dataclass
class TorchBackbone:
    handle: str
    weights: str  # "pretrained" or "random (untrained)", as TF-Hub backbones say it
    feature_dim: int
    spatial_shape: tuple[int, int] | None  # (h, w) of the map at the image size, None when not kept
    endpoint: str
    spatial_activation: str | None
    precision: str  # fp32, bf16 or fp16, resolved for `device`
    preprocessing: str
    model: dict[str, Any]
    net: TorchNet
    device: str  # "cpu" or "cuda"
    workers: int = 1  # decoding threads
    grid: tuple[int, int] = (0, 0)  # (h, w) of the map at the image size, kept or not

    @property
    def untrained(self) -> bool:
        return self.weights == UNTRAINED

    # --- the model on tensors already on the device ---

    def normalise(self, images: np.ndarray) -> Any:
        """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 on the device, scaled to [0, 1] and normalised."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images))
        if self.device == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.net.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.net.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def forward(self, x: Any, want_maps: bool) -> tuple[Any, Any]:
        """Normalised (B, 3, H, W) on the device -> pooled (B, D) float32 and maps (B, h, w, D) float16 or None."""
        import torch

        dtype = autocast_dtype(self.precision)
        autocast = torch.autocast(self.device, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN and cuDNN convolutions are faster so
        with torch.inference_mode(), autocast:
            pooled, maps = self.net.forward(x, want_maps)
        return pooled.float(), (maps.half() if maps is not None else None)

    def embed(self, images: np.ndarray, want_maps: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, S, S, 3) uint8 images (any S) -> numpy (pooled, maps): the model alone, for tests and probes."""
        pooled, maps = self.forward(self.normalise(images), want_maps)
        return pooled.cpu().numpy(), (maps.cpu().numpy() if maps is not None else None)

    # --- extract.embedding's contract ---

    def batches(self, work: Work) -> Iterator[Batch]:
        """Every pending block, in order: (rows, arrays by cache name). On a GPU, block i's results are yielded
        once block i + 1 is queued behind them."""
        patch = work.spec.patch_geometry(work.image_size)[1] if "patches" in work.spec.kinds else 0
        token = int(self.model.get("patch_size", 0))
        if patch and patch < token:
            raise PipelineError(f"--views patches: the {patch} px patch crops are smaller than {self.handle}'s {token} px "
                                "patches; raise --image-size or --patch-size")
        staged: tuple[np.ndarray, _Staged] | None = None
        for rows, images in image_blocks(work.files, work.rows, work.image_id, work.image_size, work.block,
                                         self.workers):
            outputs = _Staged(self._embed_block(rows, images, work, patch), self.device)
            if staged is not None:
                yield staged[0], staged[1].arrays(work)
            staged = (rows, outputs)
            if self.device != "cuda":  # nothing runs ahead on a CPU: hand the block on at once
                yield staged[0], staged[1].arrays(work)
                staged = None
        if staged is not None:
            yield staged[0], staged[1].arrays(work)

    def _embed_block(self, rows: np.ndarray, images: np.ndarray, work: Work, patch: int) -> dict[str, Any]:
        """One block through the model, on the device: 'pooled' (b, K, D), 'maps' (b, K, h, w, D), 'patches'
        (b, V, G*G, D)."""
        import torch

        spec, b = work.spec, len(rows)
        x = self.normalise(images)
        out = {}
        k = spec.whole_per_image
        if k:
            stack = whole_views(x, rows, work.permutations, spec)
            pooled, maps = self.forward(stack.reshape(b * k, *stack.shape[2:]), work.spatial)
            out["pooled"] = pooled.reshape(b, k, -1)
            if maps is not None:
                out["maps"] = maps.reshape(b, k, *maps.shape[1:])
        if "patches" in spec.kinds:
            corners = torch.from_numpy(np.ascontiguousarray(work.offsets[rows])).reshape(b, -1, 2).to(x.device)
            crops = cut_patches(x, corners, patch)
            pooled, _ = self.forward(crops.reshape(-1, *crops.shape[2:]), False)
            out["patches"] = pooled.reshape(b, spec.num_views, -1, pooled.shape[-1])
        return out


class _Staged:
    """One block's outputs on their way to the host: on a GPU copied into pinned memory without waiting (an event
    marks the copy's end), on a CPU already there."""

    def __init__(self, outputs: dict[str, Any], device: str):
        import torch

        self._event = None
        if device == "cuda":
            host = {k: torch.empty(v.shape, dtype=v.dtype, pin_memory=True) for k, v in outputs.items()}
            for k, v in outputs.items():
                host[k].copy_(v, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
            outputs = host
        self._outputs = outputs

    def arrays(self, work: Work) -> dict[str, np.ndarray]:
        if self._event is not None:
            self._event.synchronize()
        host = {k: v.numpy() for k, v in self._outputs.items()}
        arrays = split_outputs(host["pooled"], host.get("maps"), work.spec) if "pooled" in host else {}
        if "patches" in host:
            arrays["features/patches"] = host["patches"]
        return arrays


def check_weights(handle: str, weights: str | None) -> None:
    """--weights for a torch handle: 'random' or an existing file; one line naming the option otherwise."""
    if weights is None:
        raise PipelineError(f"--backbone {handle}: needs --weights {RANDOM_WEIGHTS} (untrained, seeded from --seed) or "
                            "--weights PATH (a local .safetensors or .pt state dict); nothing is downloaded")
    if weights != RANDOM_WEIGHTS and not Path(weights).is_file():
        raise PipelineError(f"--weights {weights}: no such file (give '{RANDOM_WEIGHTS}' or a local state dict file)")


def load_torch_backbone(handle: str, weights: str | None, image_size: int, spatial: bool = False, seed: int = 0,
                        device: str = "auto", precision: str = "auto") -> TorchBackbone:
    """Resolve the device and precision, build the model (on the CPU, then moved), probe it once at image_size."""
    parsed = torch_handle(handle)
    if parsed is None:
        raise PipelineError(f"--backbone {handle}: not a torchvision:<arch> or timm:<name> handle")
    check_weights(handle, weights)
    assert weights is not None
    used_device = resolve_device(device)
    used_precision = resolve_torch_precision(precision, used_device)
    if used_device == "cpu":
        set_cpu_threads()
    net = build_net(*parsed, weights, seed)
    weights_id = RANDOM_WEIGHTS if weights == RANDOM_WEIGHTS else "sha256:" + file_sha256(weights)
    return wrap_net(net, handle, weights_id, image_size, spatial, used_device, used_precision)


def wrap_net(net: TorchNet, handle: str, weights_id: str, image_size: int, spatial: bool, device: str = "cpu",
             precision: str = "fp32") -> TorchBackbone:
    """A built model as a backbone on `device` (resolved) at `precision` (resolved), probed once at image_size;
    `weights_id` is "random" or "sha256:<hex>", what the config records."""
    import torch

    # channels_last on either device: ResNet-50 at 224 px ran 1.3-1.4x faster so than in torch's default layout on a
    # 2-core AVX2 EPYC (benchmarks/RESULTS.md); a ViT has one convolution (its patch projection), not measured
    net.module.to(device).to(memory_format=torch.channels_last)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: cuDNN picks its fastest convolutions once
    backbone = TorchBackbone(handle=handle, weights=UNTRAINED if weights_id == RANDOM_WEIGHTS else "pretrained",
                             feature_dim=0, spatial_shape=None, endpoint=net.pooled, spatial_activation=None,
                             precision=precision, preprocessing=preprocessing_text(net.mean, net.std), model={},
                             net=net, device=device, workers=decode_workers(device))
    _probe(backbone, image_size, spatial)
    backbone.model = {"framework": "torch", "library": net.library, "architecture": net.architecture,
                      "weights": weights_id, "feature_dim": backbone.feature_dim, "grid": list(backbone.grid),
                      **net.info}
    return backbone


def _probe(backbone: TorchBackbone, image_size: int, spatial: bool) -> None:
    """The feature width and the map grid, from the model's own output on one random image."""
    images = np.random.default_rng(0).integers(0, 256, (1, image_size, image_size, 3), dtype=np.uint8)
    pooled, maps = backbone.embed(images, want_maps=True)
    if maps is None or maps.ndim != 4:
        raise PipelineError(f"--backbone {backbone.handle}: gives no spatial map")
    backbone.feature_dim = int(pooled.shape[-1])
    backbone.grid = (int(maps.shape[1]), int(maps.shape[2]))
    if spatial:
        backbone.spatial_shape = backbone.grid
        backbone.spatial_activation = backbone.net.maps
