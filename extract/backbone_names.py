"""Backbone names, importable without TensorFlow or torch (for --help, option checks and stage 2)."""

from __future__ import annotations

DEFAULT_HANDLE = "https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/5"
RANDOM_RESNET = "random-resnet50v2"
UNTRAINED = "random (untrained)"

# PyTorch backbones: `torchvision:<arch>` or `timm:<name>`, with --weights random|PATH
TORCH_LIBRARIES = ("torchvision", "timm")
RANDOM_WEIGHTS = "random"


def torch_handle(handle: str) -> tuple[str, str] | None:
    """('torchvision', 'resnet50') for 'torchvision:resnet50'; None for a TF-Hub handle, a SavedModel or
    random-resnet50v2 (a Windows drive letter or a URL scheme is not a library name)."""
    library, sep, name = handle.partition(":")
    if sep and library in TORCH_LIBRARIES:
        return library, name
    return None


def is_torch_handle(handle: str) -> bool:
    return torch_handle(handle) is not None
