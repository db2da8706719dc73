"""PyTorch architectures as feature extractors: `build_net(library, name, weights, seed)` -> a `TorchNet`, whose
`forward(x, maps)` takes normalised (B, 3, H, W) and gives the pooled feature (B, D) and, when asked for, the
last spatial map (B, h, w, D), channels last as the cache stores it.

- torchvision ResNets (resnet*, resnext*, wide_resnet*): the pooled vector is the model's own avgpool of
  `layer4`, whose map (after the last block's ReLU) is the spatial map.
- torchvision ViTs (vit_*): the class token after the final LayerNorm is the pooled vector (what the
  classifier reads); the patch tokens after that LayerNorm, as an h x w grid, are the map. Position
  embeddings are interpolated (bicubic, as torchvision's `interpolate_embeddings`) when the input's grid is not
  the weights' (another --image-size, the patch crops).
- timm models: `forward_features` then the model's own pooling (`forward_head(pre_logits=True)`); the map is a
  CNN's last feature map, or a ViT's patch tokens (prefix tokens dropped) as a grid (`dynamic_img_size`).

Random weights are torch's own initialisation after `torch.manual_seed(seed)`; a weights file is loaded on
the CPU. Nothing is downloaded: torchvision and timm are asked for architectures only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.errors import PipelineError

from .backbone_names import RANDOM_WEIGHTS
from .torch_weights import load_into, read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class TorchNet:
    """A model and how to read features from it."""

    module: Any  # torch.nn.Module, in eval mode
    forward: Callable[[Any, bool], tuple[Any, Any]]  # (x (B, 3, H, W), maps) -> pooled (B, D), maps (B, h, w, D) | None
    library: str
    architecture: str
    pooled: str  # what the pooled vector is (the cache's backbone_endpoint)
    maps: str  # which activation the maps are, and whether the pooled vector is their mean
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    info: dict[str, Any] = field(default_factory=dict)  # extra facts for the config (patch size)


def _require(module: str, handle: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        hint = "pip install timm" if module == "timm" else "see docs/extraction.md, 'PyTorch backbones', for the install"
        raise PipelineError(f"--backbone {handle}: {module} is not installed or does not import "
                            f"({str(e).splitlines()[0][:120]}); {hint}") from None


def build_net(library: str, name: str, weights: str, seed: int) -> TorchNet:
    """The architecture with random weights (seeded) or the weights file's, on the CPU, in eval mode."""
    import torch

    handle = f"{library}:{name}"
    torch.manual_seed(seed)
    if library == "torchvision":
        net = _torchvision_net(handle, name, weights)
    elif library == "timm":
        net = _timm_net(handle, name, weights)
    else:
        raise PipelineError(f"--backbone {handle}: unknown library {library!r} (torchvision or timm)")
    net.module.eval()
    for p in net.module.parameters():
        p.requires_grad_(False)
    return net


# --- torchvision -----------------------------------------------------------------------------------------

def _torchvision_net(handle: str, name: str, weights: str) -> TorchNet:
    tv = _require("torchvision", handle)
    models = tv.models
    known = models.list_models(module=models)  # classification models only (not detection, video...)
    if name not in known:
        close = [m for m in known if m.startswith(name[:3])][:6]
        raise PipelineError(f"--backbone {handle}: not a torchvision classification model"
                            + (f" (e.g. {', '.join(close)})" if close else ""))
    model = models.get_model(name, weights=None)  # the architecture only: weights=None downloads nothing
    if isinstance(model, models.ResNet):
        forward, pooled, maps, optional, info = _resnet_forward, "avgpool(layer4)", RESNET_MAPS, ("fc.",), {}
    elif isinstance(model, models.VisionTransformer):
        forward, pooled, maps, optional = _vit_forward, "encoder.ln class token", VIT_MAPS, ("heads.",)
        info = {"patch_size": int(model.patch_size)}
    else:
        raise PipelineError(f"--backbone {handle}: only torchvision's ResNets (resnet50, resnext50_32x4d, "
                            "wide_resnet50_2, ...) and ViTs (vit_b_16, ...) are read as feature extractors here; "
                            "timm:<name> reads any timm model")
    if weights != RANDOM_WEIGHTS:
        state = read_state_dict(weights)
        if isinstance(model, models.VisionTransformer):
            _fit_position_embedding(model, state)
        load_into(model, state, weights, optional)
    return TorchNet(model, lambda x, want: forward(model, x, want), "torchvision", name, pooled, maps, info=info)


RESNET_MAPS = "layer4: the last block's output (after its ReLU); features/original is its mean over h, w"
VIT_MAPS = ("encoder.ln: the patch tokens after the final LayerNorm, as an h x w grid; features/original is the "
            "class token, NOT their mean over h, w")


def _resnet_forward(m: Any, x: Any, want_maps: bool) -> tuple[Any, Any]:
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
    pooled = m.avgpool(x).flatten(1)
    return pooled, (x.permute(0, 2, 3, 1) if want_maps else None)


def _fit_position_embedding(model: Any, state: dict[str, Any]) -> None:
    """A ViT checkpoint of another resolution (e.g. 384 px SWAG weights): give the model its grid of position
    embeddings; the forward pass interpolates them to each input's grid."""
    import torch

    stored = state.get("encoder.pos_embedding")
    own = model.encoder.pos_embedding
    if stored is not None and stored.ndim == 3 and stored.shape[1] != own.shape[1]:
        model.encoder.pos_embedding = torch.nn.Parameter(torch.zeros_like(stored), requires_grad=False)


def _position_embedding(pos: Any, gh: int, gw: int) -> Any:
    """(1, 1 + G*G, D) -> (1, 1 + gh*gw, D): the class token's as is, the grid's interpolated (bicubic, corners
    aligned, as torchvision.models.vision_transformer.interpolate_embeddings) when the grid differs."""
    import torch
    import torch.nn.functional as F

    n = pos.shape[1] - 1
    g = int(math.isqrt(n))
    if g * g != n:
        raise PipelineError(f"ViT position embeddings of {n} patches are not a square grid")
    if (g, g) == (gh, gw):
        return pos
    grid = pos[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=True).to(pos.dtype)
    return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)


def _vit_forward(m: Any, x: Any, want_maps: bool) -> tuple[Any, Any]:
    import torch

    n = x.shape[0]
    x = m.conv_proj(x)  # (n, D, gh, gw): a size not a multiple of the patch keeps the whole patches it holds
    gh, gw = int(x.shape[-2]), int(x.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([m.class_token.expand(n, -1, -1), x], dim=1)
    x = x + _position_embedding(m.encoder.pos_embedding, gh, gw)
    x = m.encoder.ln(m.encoder.layers(m.encoder.dropout(x)))
    return x[:, 0], (x[:, 1:].reshape(n, gh, gw, -1) if want_maps else None)


# --- timm ------------------------------------------------------------------------------------------------

def _timm_net(handle: str, name: str, weights: str) -> TorchNet:
    timm = _require("timm", handle)
    if name not in timm.list_models(pretrained=False) and name.split(".")[0] not in timm.list_models(pretrained=False):
        raise PipelineError(f"--backbone {handle}: not a timm model name (timm.list_models() lists them)")
    kwargs: dict[str, Any] = {}
    if weights != RANDOM_WEIGHTS:  # timm's own loader: its key conversions (e.g. DINOv2's original keys) apply
        kwargs = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(Path(weights).resolve())}}
    try:
        try:
            model = timm.create_model(name, dynamic_img_size=True, **kwargs)  # ViTs: any input size
        except TypeError:  # a model without the option (a CNN)
            model = timm.create_model(name, **kwargs)
    except PipelineError:
        raise
    except Exception as e:  # noqa: BLE001  (timm raises RuntimeError, KeyError, ValueError... for a bad file)
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        where = f"--weights {weights}" if weights != RANDOM_WEIGHTS else f"--backbone {handle}"
        raise PipelineError(f"{where}: timm could not build the model ({type(e).__name__}: {first})") from None
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    prefix = int(getattr(model, "num_prefix_tokens", 0))
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    info = {"patch_size": int(patch[0])} if patch is not None else {}
    pool = getattr(model, "global_pool", None)
    pooled = f"forward_head(pre_logits) ({pool})" if isinstance(pool, str) and pool else "forward_head(pre_logits)"
    maps = ("forward_features: the patch tokens after the final norm (prefix tokens dropped), as an h x w grid; "
            "features/original is the model's own pooling" if patch is not None else
            "forward_features: the last feature map; features/original is the model's own pooling of it")
    return TorchNet(model, lambda x, want: _timm_forward(model, x, want, prefix, patch), "timm", name, pooled, maps,
                    mean, std, info)


def _timm_forward(m: Any, x: Any, want_maps: bool, prefix: int, patch: Any) -> tuple[Any, Any]:
    if patch is not None:  # a ViT keeps the whole patches the input holds (as torchvision's strided projection)
        gh, gw = int(x.shape[-2]) // int(patch[0]), int(x.shape[-1]) // int(patch[1])
        x = x[..., : gh * int(patch[0]), : gw * int(patch[1])]
    feats = m.forward_features(x)
    pooled = m.forward_head(feats, pre_logits=True)
    if not want_maps:
        return pooled, None
    d = pooled.shape[-1]
    if feats.ndim == 3:  # tokens: drop the class and register tokens, lay the rest on the input's grid
        return pooled, feats[:, prefix:].reshape(x.shape[0], gh, gw, -1)
    if feats.ndim == 4 and feats.shape[1] == d and feats.shape[-1] != d:
        return pooled, feats.permute(0, 2, 3, 1)  # NCHW (most CNNs)
    if feats.ndim == 4:
        return pooled, feats  # NHWC (e.g. Swin)
    raise PipelineError(f"timm:{type(m).__name__}: forward_features gives {tuple(feats.shape)}, not a map")
