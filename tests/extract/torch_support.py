"""A tiny plain-PyTorch backbone for the torch extraction tests (no torchvision, no timm): two strided convolutions,
the second's ReLU map pooled by its mean, wrapped exactly as extract.torch_nets wraps a library's model."""

from __future__ import annotations

import numpy as np

CUDA_OR_SKIP = "a CUDA GPU torch sees"


def tiny_net(seed: int = 0, width: int = 8):
    import torch

    from extract.torch_nets import TorchNet

    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU(),
                                 torch.nn.Conv2d(4, width, 3, stride=2, padding=1), torch.nn.ReLU()).eval()

    def forward(x, want_maps):
        maps = module(x)
        return maps.mean(dim=(2, 3)), (maps.permute(0, 2, 3, 1) if want_maps else None)

    return TorchNet(module, forward, "test", "tiny", "mean of the last map",
                    "conv: the last ReLU map; features/original is its mean over h, w")


def tiny_backbone(image_size: int, spatial: bool = True, seed: int = 0, weights_id: str = "random",
                  device: str = "cpu", precision: str = "fp32"):
    from extract.torch_backbone import wrap_net

    return wrap_net(tiny_net(seed), "test:tiny", weights_id, image_size, spatial, device, precision)


def stored_inputs(image: np.ndarray, jigsaw: np.ndarray, rcm: np.ndarray, jigsaw_grid: int, rcm_grid: int) -> np.ndarray:
    """(1 + V + V, S, S, 3) uint8: the original and the views the cache says were embedded, cut by the contract's
    numpy functions (pipeline.views), not by the code under test."""
    from pipeline.views import apply_permutation

    views = [image] + [apply_permutation(image, p, jigsaw_grid) for p in jigsaw] + \
        [apply_permutation(image, p, rcm_grid) for p in rcm]
    return np.stack(views)
